#include "daemon/daemon.h"
#include <stdio.h>
#include <string.h>
int dmn_main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: kvasird [--foreground]\n  the kvasir daemon (not implemented yet)\n");
      return 0;
    }
  fprintf(stderr, "kvasird: not implemented yet\n");
  return 2;
}
