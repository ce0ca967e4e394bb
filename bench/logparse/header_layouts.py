#!/usr/bin/env python3
"""header_layouts.py — the header-robustness set: each LogHub system's message
bodies re-emitted under other header layouts, with the ground truth unchanged,
and (with --bench) the grouping accuracy of every layout against the original.

    header_layouts.py LOGHUB_DIR OUT_DIR [--bench path/to/bench_logparse] [--off RULES]

For every layout L and system S it writes OUT_DIR/L/S/S_2k.log (one line per
record of S_2k.log_structured.csv: the record's Content under L's header) and
OUT_DIR/L/S/S_2k.log_structured.csv (a copy: same EventId per line). Header
fields come from the CSV where the system has them (Level, Component, Pid),
else neutral values (INFO, "app", a pid from the line number); timestamps are
synthetic, one second apart from 2016-03-01, with milliseconds. No layout is
one of the twelve originals, and nothing in the parser knows these names.

Layouts: syslog RFC 3164 and RFC 5424, ISO 8601 with and without zone,
bracketed timestamps with and without year in several field orders,
"[date time] [level] program[pid]:", log4j "LEVEL [thread] class:", Python
logging, an nginx/Apache access-log prefix, JSON lines, logfmt, pipe- and
tab-separated, epoch seconds and milliseconds; five with timestamps in shapes
the timestamp parser does not know (time of day only, compact and dotted
dates); eight of other programs (Go, klog, nginx error, PostgreSQL, Ruby
Logger, Apache error, Heroku, Elixir); twelve more programs' defaults
(rsyslog ISO, journalctl short-precise, CRI container logs, MySQL, Redis,
MongoDB, gunicorn, Celery, Cassandra, Elasticsearch, Kafka, supervisord);
"mixed": five of the layouts
alternating line by line in one file, and four pairs ("mix_A_B"); "junk20": the original files with a
stray headerless line after every fourth (their own truth ids).
"""
import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys

SYSTEMS = ["Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "Linux", "Mac", "OpenStack", "Spark", "Windows",
           "Zookeeper"]
T0 = dt.datetime(2016, 3, 1, 8, 0, 0, tzinfo=dt.timezone.utc)
MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def level_word(v):
    v = (v or "").strip().upper()
    for k, w in (("D", "DEBUG"), ("I", "INFO"), ("W", "WARN"), ("E", "ERROR"), ("F", "FATAL"), ("V", "TRACE"),
                 ("N", "NOTICE"), ("S", "ERROR"), ("C", "ERROR")):
        if v.startswith(k):
            return w
    return "INFO"


def fields(row, i):
    lvl = level_word(row.get("Level") or row.get("Type"))
    comp = (row.get("Component") or "app").strip() or "app"
    pid = (row.get("Pid") or row.get("PID") or "").strip()
    if not pid.isdigit():
        pid = str(1000 + (i * 7919) % 30000)
    t = T0 + dt.timedelta(seconds=i, milliseconds=(i * 37) % 1000)
    return lvl, comp, pid, t


def iso(t, zone=True, sep="T"):
    s = t.strftime("%Y-%m-%d" + sep + "%H:%M:%S") + ".%03d" % (t.microsecond // 1000)
    return s + ("Z" if zone is True else zone if zone else "")


def ident(comp):
    return re.sub(r"\s+", "_", comp)


def logfmt_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pri(lvl):
    sev = {"FATAL": 2, "ERROR": 3, "WARN": 4, "NOTICE": 5, "INFO": 6, "DEBUG": 7, "TRACE": 7}[lvl]
    return "<%d>" % (8 + sev)


LAYOUTS = {
    "rfc3164": lambda c, l, p, pid, t, i: "%s%s %2d %s host%d %s[%s]: %s" % (
        pri(l), MON[t.month - 1], t.day, t.strftime("%H:%M:%S"), i % 5, ident(p), pid, c),
    "rfc5424": lambda c, l, p, pid, t, i: "%s1 %s host%d %s %s - - %s" % (
        pri(l), iso(t), i % 5, ident(p), pid, c),
    "iso_zone": lambda c, l, p, pid, t, i: "%s %s %s: %s" % (iso(t, "+01:00"), l, p, c),
    "iso_nozone": lambda c, l, p, pid, t, i: "%s %-5s %s - %s" % (iso(t, None), l, ident(p), c),
    "bracket_year": lambda c, l, p, pid, t, i: "[%s] %s %s: %s" % (iso(t, None, " "), l, p, c),
    "bracket_noyear_lvl_first": lambda c, l, p, pid, t, i: "%s [%s %2d %s] %s: %s" % (
        l, MON[t.month - 1], t.day, t.strftime("%H:%M:%S"), p, c),
    "bracket_comp_first": lambda c, l, p, pid, t, i: "%s [%s] %s %s" % (
        ident(p), t.strftime("%d/%m %H:%M:%S"), l, c),
    "bracket_date_level_prog": lambda c, l, p, pid, t, i: "[%s] [%s] %s[%s]: %s" % (
        iso(t, None, " "), l.lower(), ident(p), pid, c),
    "log4j": lambda c, l, p, pid, t, i: "%s %-5s [worker-%d] %s: %s" % (
        iso(t, None, " ").replace(".", ","), l, i % 8, "org.example." + ident(p), c),
    "python": lambda c, l, p, pid, t, i: "%s - %s - %s - %s" % (
        iso(t, None, " ").replace(".", ","), ident(p), l, c),
    "access": lambda c, l, p, pid, t, i: '10.%d.%d.%d - - [%s +0000] "GET /%s HTTP/1.1" %d %d %s' % (
        i % 7, i % 13, i % 251, t.strftime("%d/") + MON[t.month - 1] + t.strftime("/%Y:%H:%M:%S"),
        ident(p), (200, 200, 304, 404)[i % 4], 100 + (i * 53) % 9000, c),
    "json": lambda c, l, p, pid, t, i: json.dumps(
        {"ts": iso(t), "level": l.lower(), "logger": p, "pid": int(pid), "msg": c}, ensure_ascii=False),
    "logfmt": lambda c, l, p, pid, t, i: "ts=%s level=%s logger=%s msg=%s" % (
        iso(t), l.lower(), ident(p), logfmt_quote(c)),
    "pipe": lambda c, l, p, pid, t, i: "%s|%s|%s|%s" % (iso(t, None, " "), l, ident(p), c),
    "tab": lambda c, l, p, pid, t, i: "%s\t%s\t%s\t%s" % (iso(t), l, ident(p), c),
    "epoch_s": lambda c, l, p, pid, t, i: "%d %s %s: %s" % (int(t.timestamp()), l, ident(p), c),
    "epoch_ms": lambda c, l, p, pid, t, i: "%d %s[%s] %s %s" % (
        int(t.timestamp() * 1000), ident(p), pid, l, c),
    # timestamps in shapes the timestamp parser does not know: the header is
    # found from the column's regular shape alone (the time itself is lost)
    "tod": lambda c, l, p, pid, t, i: "%s.%03d %s %s: %s" % (t.strftime("%H:%M:%S"), t.microsecond // 1000, l, p, c),
    "tod_bracket_prog": lambda c, l, p, pid, t, i: "[%s] %s[%s]: %s" % (t.strftime("%H:%M:%S"), ident(p), pid, c),
    "compact_date": lambda c, l, p, pid, t, i: "%s:%03d %s %s %s" % (
        t.strftime("%Y%m%d-%H:%M:%S"), t.microsecond // 1000, l, ident(p), c),
    "dotted_date": lambda c, l, p, pid, t, i: "%s %s %s: %s" % (t.strftime("%d.%m.%Y %H:%M:%S"), l, p, c),
    "pipe_tod": lambda c, l, p, pid, t, i: "%s:%03d|%s|%s|%s" % (
        t.strftime("%H:%M:%S"), t.microsecond // 1000, ident(p), pid, c),
    # common layouts of other programs
    "go_log": lambda c, l, p, pid, t, i: "%s %s" % (t.strftime("%Y/%m/%d %H:%M:%S"), c),
    "klog": lambda c, l, p, pid, t, i: "%s%s.%06d %7s %s.go:%d] %s" % (
        l[0], t.strftime("%m%d %H:%M:%S"), t.microsecond, pid, ident(p), 10 + i % 90, c),
    "nginx_error": lambda c, l, p, pid, t, i: "%s [%s] %s#0: *%d %s" % (
        t.strftime("%Y/%m/%d %H:%M:%S"), l.lower(), pid, i, c),
    "postgres": lambda c, l, p, pid, t, i: "%s UTC [%s] %s:  %s" % (iso(t, None, " "), pid, l, c),
    "ruby_logger": lambda c, l, p, pid, t, i: "%s, [%s #%s] %5s -- %s: %s" % (
        l[0], t.strftime("%Y-%m-%dT%H:%M:%S.%f"), pid, l, ident(p), c),
    "apache_error": lambda c, l, p, pid, t, i: "[%s] [%s:%s] [pid %s] %s" % (
        t.strftime("%a %b %d %H:%M:%S.%f %Y"), ident(p), l.lower(), pid, c),
    "heroku": lambda c, l, p, pid, t, i: "%s app[web.%d]: %s" % (iso(t, "+00:00"), i % 3 + 1, c),
    "elixir": lambda c, l, p, pid, t, i: "%s.%03d [%s] %s" % (t.strftime("%H:%M:%S"), t.microsecond // 1000, l.lower(), c),
    # more programs' defaults (2026-12-04): none is a LogHub system's
    "rsyslog_iso": lambda c, l, p, pid, t, i: "%s host%d %s[%s]: %s" % (
        t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06d+00:00" % t.microsecond, i % 5, ident(p), pid, c),
    "journal_precise": lambda c, l, p, pid, t, i: "%s %s.%06d host%d %s[%s]: %s" % (
        t.strftime("%b %d"), t.strftime("%H:%M:%S"), t.microsecond, i % 5, ident(p), pid, c),
    "cri": lambda c, l, p, pid, t, i: "%s.%09dZ %s F %s" % (
        t.strftime("%Y-%m-%dT%H:%M:%S"), t.microsecond * 1000, ("stdout", "stderr")[i % 2], c),
    "mysql": lambda c, l, p, pid, t, i: "%s.%06dZ %d [%s] %s" % (
        t.strftime("%Y-%m-%dT%H:%M:%S"), t.microsecond, i % 4, {"ERROR": "ERROR", "WARN": "Warning"}.get(l, "Note"), c),
    "redis": lambda c, l, p, pid, t, i: "%s:M %s.%03d %s %s" % (
        pid, t.strftime("%d %b %Y %H:%M:%S"), t.microsecond // 1000, {"ERROR": "#", "WARN": "#", "DEBUG": "."}.get(l, "*"), c),
    "mongodb": lambda c, l, p, pid, t, i: "%s.%03d+0000 %s %-8s [conn%d] %s" % (
        t.strftime("%Y-%m-%dT%H:%M:%S"), t.microsecond // 1000, l[0], ident(p)[:8].upper(), i % 9, c),
    "gunicorn": lambda c, l, p, pid, t, i: "[%s +0000] [%s] [%s] %s" % (t.strftime("%Y-%m-%d %H:%M:%S"), pid, l, c),
    "celery": lambda c, l, p, pid, t, i: "[%s,%03d: %s/MainProcess] %s" % (
        t.strftime("%Y-%m-%d %H:%M:%S"), t.microsecond // 1000, l, c),
    "cassandra": lambda c, l, p, pid, t, i: "%-5s [%s] %s,%03d %s.java:%d - %s" % (
        l, ("main", "CompactionExecutor:%d" % (i % 3))[i % 2], t.strftime("%Y-%m-%d %H:%M:%S"), t.microsecond // 1000,
        ident(p), 10 + i % 300, c),
    "elasticsearch": lambda c, l, p, pid, t, i: "[%s,%03d][%-5s][o.e.%s] [node-%d] %s" % (
        t.strftime("%Y-%m-%dT%H:%M:%S"), t.microsecond // 1000, l, ident(p)[:12], i % 3, c),
    "kafka": lambda c, l, p, pid, t, i: "[%s,%03d] %s %s (kafka.%s)" % (
        t.strftime("%Y-%m-%d %H:%M:%S"), t.microsecond // 1000, l, c, ident(p)),
    "supervisord": lambda c, l, p, pid, t, i: "%s,%03d %s %s" % (
        t.strftime("%Y-%m-%d %H:%M:%S"), t.microsecond // 1000, l, c),
}
JUNK = ["==== checkpoint ====", "Processing batch of queued records", "configuration reloaded from disk"]
# several layouts in one file, alternating line by line
MIXED = ["rfc3164", "iso_zone", "log4j", "bracket_date_level_prog", "json"]
LAYOUTS["mixed"] = lambda c, l, p, pid, t, i: LAYOUTS[MIXED[i % len(MIXED)]](c, l, p, pid, t, i)
# and two at a time
for _a, _b in (("iso_zone", "log4j"), ("python", "log4j"), ("rfc3164", "rfc5424"), ("go_log", "klog")):
    LAYOUTS["mix_%s_%s" % (_a, _b)] = (lambda a, b: lambda c, l, p, pid, t, i: LAYOUTS[(a, b)[i % 2]](
        c, l, p, pid, t, i))(_a, _b)


def generate(loghub, out):
    for s in SYSTEMS:
        src = os.path.join(loghub, s, s + "_2k.log_structured.csv")
        with open(src, newline="", encoding="utf-8", errors="replace") as f:
            rows = list(csv.DictReader(f))
        with open(src, "rb") as f:
            truth = f.read()
        for name, fn in LAYOUTS.items():
            d = os.path.join(out, name, s)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, s + "_2k.log"), "w", encoding="utf-8") as f:
                for i, r in enumerate(rows):
                    lvl, comp, pid, t = fields(r, i)
                    f.write(fn(r["Content"], lvl, comp, pid, t, i) + "\n")
            with open(os.path.join(d, s + "_2k.log_structured.csv"), "wb") as f:
                f.write(truth)
        # the original file with a junk line (no header) after every fourth:
        # a file of one layout plus stray lines must not be taken for several
        with open(os.path.join(loghub, s, s + "_2k.log"), encoding="utf-8", errors="replace") as f:
            raw = f.read().split("\n")[:len(rows)]
        d = os.path.join(out, "junk20", s)
        os.makedirs(d, exist_ok=True)
        fields_ = list(rows[0].keys())
        with open(os.path.join(d, s + "_2k.log"), "w", encoding="utf-8") as f, \
                open(os.path.join(d, s + "_2k.log_structured.csv"), "w", newline="", encoding="utf-8") as c:
            w = csv.DictWriter(c, fieldnames=fields_)
            w.writeheader()
            for i, r in enumerate(rows):
                f.write(raw[i] + "\n")
                w.writerow(r)
                if i % 4 == 3:
                    j = (i // 4) % len(JUNK)
                    f.write(JUNK[j] + "\n")
                    w.writerow({k: (JUNK[j] if k in ("Content", "EventTemplate") else "JUNK%d" % j if k == "EventId"
                                    else "") for k in fields_})


def run_bench(bench, d, off):
    cmd = [bench, d] + (["--off", off] if off else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    ga = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) >= 2 and p[0] in SYSTEMS:
            ga[p[0]] = float(p[1])
    return ga


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        return 2
    loghub, out = args[0], args[1]
    bench = args[args.index("--bench") + 1] if "--bench" in args else None
    off = args[args.index("--off") + 1] if "--off" in args else None
    generate(loghub, out)
    if not bench:
        return 0
    base = run_bench(bench, loghub, off)
    avg0 = sum(base.values()) / len(base)
    print("%-26s %6s %6s %6s  %s" % ("layout", "GA", "drop", "min", "worst system (GA)"))
    print("%-26s %6.3f %6s %6.3f" % ("original", avg0, "", min(base.values())))
    worst_drop = 0
    for name in list(LAYOUTS) + ["junk20"]:
        ga = run_bench(bench, os.path.join(out, name), off)
        avg = sum(ga.values()) / len(ga)
        ws = min(ga, key=lambda k: ga[k] - base[k])
        worst_drop = max(worst_drop, avg0 - avg)
        print("%-26s %6.3f %+6.3f %6.3f  %s (%.3f, was %.3f)" % (name, avg, avg - avg0, min(ga.values()), ws,
                                                                ga[ws], base[ws]))
    print("largest average drop %.3f (goal <= 0.02)" % worst_drop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
