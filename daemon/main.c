/* main.c — kvasird entry point; everything lives in the kv_daemon library. */
#include "daemon/daemon.h"
int main(int argc, char **argv) { return dmn_main(argc, argv); }
