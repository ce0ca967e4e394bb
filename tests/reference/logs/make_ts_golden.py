#!/usr/bin/env python3
"""Golden values for logs/ts.c: epoch milliseconds (UTC) of timestamp strings
in the formats the parser claims, computed independently with Python's
datetime. Output: ts_golden.tsv with columns input, year_hint, expected_ms,
consumed (bytes of input that form the timestamp). Run:
    python3 make_ts_golden.py > ts_golden.tsv
"""
from datetime import datetime, timezone, timedelta

def ms(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)

rows = []
def add(s, hint, dt, consumed=None):
    rows.append((s, hint, ms(dt), len(s) if consumed is None else consumed))

# ISO 8601 / log4j / logback / Hadoop / Zookeeper / OpenStack
add("2015-10-18 18:01:47,978", 2000, datetime(2015, 10, 18, 18, 1, 47, 978000))
add("2017-05-16 00:00:00.008", 2000, datetime(2017, 5, 16, 0, 0, 0, 8000))
add("2024-02-29T23:59:59Z", 2000, datetime(2024, 2, 29, 23, 59, 59))
add("2024-02-29T23:59:59.5+02:00", 2000, datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=timezone(timedelta(hours=2))))
add("2023-12-31T22:00:00-0530", 2000, datetime(2023, 12, 31, 22, 0, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))))
add("2021-07-04T12:30:45.123456Z", 2000, datetime(2021, 7, 4, 12, 30, 45, 123000))
# Windows CBS: trailing comma not consumed
add("2016-09-28 04:30:30, Info", 2000, datetime(2016, 9, 28, 4, 30, 30), consumed=19)
# BGL dotted
add("2005-06-03-15.42.50.675872", 2000, datetime(2005, 6, 3, 15, 42, 50, 675000))
add("2005.06.03 R02", 2000, datetime(2005, 6, 3), consumed=10)
# Windows CSI-style
add("2016/9/27:20:30:31.455", 2000, datetime(2016, 9, 27, 20, 30, 31, 455000))
# syslog (year from hint), with and without padding
add("Jun 14 15:16:01 combo", 2005, datetime(2005, 6, 14, 15, 16, 1), consumed=15)
add("Jul  1 09:00:55 host", 2017, datetime(2017, 7, 1, 9, 0, 55), consumed=15)
# Apache / ctime
add("Sun Dec 04 04:47:44 2005", 2000, datetime(2005, 12, 4, 4, 47, 44))
add("Thu Jan  1 00:00:01 1970", 2000, datetime(1970, 1, 1, 0, 0, 1))
# nginx / Apache access
add("10/Oct/2000:13:55:36 -0700", 2000, datetime(2000, 10, 10, 13, 55, 36, tzinfo=timezone(timedelta(hours=-7))))
# Android logcat (year from hint)
add("03-17 16:13:38.811  1702", 2016, datetime(2016, 3, 17, 16, 13, 38, 811000), consumed=18)
# HDFS yymmdd HHMMSS
add("081109 203615 148", 2000, datetime(2008, 11, 9, 20, 36, 15), consumed=13)
# Spark yy/mm/dd
add("17/06/09 20:10:40 INFO", 2000, datetime(2017, 6, 9, 20, 10, 40), consumed=17)
# epoch seconds / milliseconds
add("1117838570 2005.06.03", 2000, datetime.fromtimestamp(1117838570, timezone.utc), consumed=10)
add("1700000000123", 2000, datetime.fromtimestamp(1700000000.123, timezone.utc))

for s, h, m, c in rows:
    print(f"{s}\t{h}\t{m}\t{c}")
# Strings that must NOT parse (expected_ms = none)
for s in ["12345", "2005-13-01 00:00:00", "Foo 12 10:00:00", "99999999999", "2024-02-30", "node-246", "", "1:2:3"]:
    print(f"{s}\t2000\tnone\t0")
