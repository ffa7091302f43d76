/*
 * ctrld's bump allocator: everything one MapResponse decode makes goes at
 * once (ctrldi_arena in mapstate.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "tk/mem.h"
#include "mapstate.h"

struct ctrldi_arena_chunk {
	struct ctrldi_arena_chunk *next;
	size_t cap, used;
	max_align_t data[];
};

#define ARENA_MIN (64u << 10)
#define ARENA_MAX (16u << 20) /* big chunks: see tk_mem_hint_huge */

void
ctrldi_arena_init(ctrldi_arena *a)
{
	a->head = NULL;
	a->next_size = ARENA_MIN;
}

void
ctrldi_arena_fini(ctrldi_arena *a)
{
	struct ctrldi_arena_chunk *c = a->head, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		tk_free(c);
	}
	a->head = NULL;
}

void
ctrldi_arena_reset(ctrldi_arena *a)
{
	struct ctrldi_arena_chunk *c = a->head, *next;

	if (c == NULL)
		return;
	for (next = c->next; next != NULL; next = c->next) {
		c->next = next->next;
		tk_free(next);
	}
	c->used = 0;
}

void *
ctrldi_arena_alloc(ctrldi_arena *a, size_t n)
{
	struct ctrldi_arena_chunk *c = a->head;
	size_t sz;
	void *p;

	n = (n + 7) & ~(size_t)7;
	if (n == 0)
		n = 8;
	if (c == NULL || c->cap - c->used < n) {
		sz = a->next_size;
		if (sz < n)
			sz = n;
		c = tk_malloc(sizeof(*c) + sz);
		if (c == NULL)
			return NULL;
		tk_mem_hint_huge(c, sizeof(*c) + sz);
		c->cap = sz;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		if (a->next_size < ARENA_MAX)
			a->next_size *= 2;
	}
	p = (uint8_t *)c->data + c->used;
	c->used += n;
	return p;
}
