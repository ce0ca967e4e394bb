/* sample.c — fixture for the indexer's symbol tests (not built). */
#include <stdlib.h>

struct point {
  int x, y;
};

typedef struct buffer {
  char *data;
  size_t len;
} buffer;

enum color { RED, GREEN };

#define SQUARE(v) ((v) * (v))

static int add(int a, int b) { return a + b; }

int scale_point(struct point *p, int k) {
  p->x = p->x * k;
  p->y = add(p->y, k);
  return SQUARE(p->x);
}

buffer *buffer_new(size_t n) {
  buffer *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->data = calloc(n, 1);
  b->len = n;
  return b;
}

void buffer_free(buffer *b) {
  if (!b) return;
  free(b->data);
  free(b);
}
