/* Binary min-heap of timers; each timer remembers its slot for O(log n) removal. */
#include "tk/err.h"
#include "tk/mem.h"

#include "loop_int.h"

static int
before(const tk_loop_timer *a, const tk_loop_timer *b)
{
	if (a->t_deadline != b->t_deadline)
		return a->t_deadline < b->t_deadline;
	return a->t_seq < b->t_seq;
}

static void
place(tki_theap *h, size_t i, tk_loop_timer *t)
{
	h->h_v[i] = t;
	t->t_idx = i;
}

static void
sift_up(tki_theap *h, size_t i)
{
	tk_loop_timer *t = h->h_v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!before(t, h->h_v[parent]))
			break;
		place(h, i, h->h_v[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void
sift_down(tki_theap *h, size_t i)
{
	tk_loop_timer *t = h->h_v[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		tk_loop_timer *best = t;

		if (l < h->h_len && before(h->h_v[l], best)) {
			m = l;
			best = h->h_v[l];
		}
		if (r < h->h_len && before(h->h_v[r], best))
			m = r;
		if (m == i)
			break;
		place(h, i, h->h_v[m]);
		i = m;
	}
	place(h, i, t);
}

void
tki_theap_init(tki_theap *h)
{
	h->h_v = NULL;
	h->h_len = 0;
	h->h_cap = 0;
}

void
tki_theap_fini(tki_theap *h)
{
	tk_free(h->h_v);
	tki_theap_init(h);
}

int
tki_theap_push(tki_theap *h, tk_loop_timer *t)
{
	TK_ASSERT(t->t_idx == TKI_HEAP_NONE);
	if (h->h_len == h->h_cap) {
		size_t ncap = h->h_cap ? h->h_cap * 2 : 16;
		tk_loop_timer **nv = tk_realloc(h->h_v, ncap * sizeof(*nv));

		if (nv == NULL)
			return TK_ENOMEM;
		h->h_v = nv;
		h->h_cap = ncap;
	}
	h->h_v[h->h_len] = t;
	t->t_idx = h->h_len++;
	sift_up(h, t->t_idx);
	return 0;
}

void
tki_theap_remove(tki_theap *h, tk_loop_timer *t)
{
	size_t i = t->t_idx;
	tk_loop_timer *last;

	if (i == TKI_HEAP_NONE)
		return;
	TK_ASSERT(i < h->h_len && h->h_v[i] == t);
	t->t_idx = TKI_HEAP_NONE;
	last = h->h_v[--h->h_len];
	if (last == t)
		return;
	place(h, i, last);
	/* The moved element may need to go either way. */
	if (i > 0 && before(last, h->h_v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

tk_loop_timer *
tki_theap_peek(const tki_theap *h)
{
	return h->h_len ? h->h_v[0] : NULL;
}
