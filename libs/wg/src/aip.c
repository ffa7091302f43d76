/*
 * Allowed IPs: a path-compressed binary trie per address family.  Each
 * node holds a masked prefix; a node without a peer is a pure branch point
 * and always has two children (removal folds it away otherwise).
 */
#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "tk/wg_aip.h"

typedef struct aip_node {
	struct aip_node *an_child[2];
	void *an_peer; /* NULL: branch point only */
	unsigned an_bits;
	uint8_t an_key[16];
} aip_node;

struct tk_wg_aip {
	aip_node *a_root[2]; /* [0] IPv4, [1] IPv6 */
	size_t a_count;
};

static unsigned
bit_at(const uint8_t *k, unsigned i)
{
	return (k[i / 8] >> (7 - i % 8)) & 1u;
}

/*
 * Number of leading bits a and b share, at most max, given that the first
 * `from` bits are already known to be equal.  Starting past the bits an
 * ancestor already matched keeps a whole descent O(address bits).
 */
static unsigned
common_bits(const uint8_t *a, const uint8_t *b, unsigned from, unsigned max)
{
	unsigned i = from;

	while (i < max && i % 8 != 0) {
		if (bit_at(a, i) != bit_at(b, i))
			return i;
		i++;
	}
	while (i + 8 <= max && a[i / 8] == b[i / 8])
		i += 8;
	while (i < max && bit_at(a, i) == bit_at(b, i))
		i++;
	return i;
}

static void
mask_key(uint8_t out[16], const uint8_t *addr, size_t alen, unsigned bits)
{
	memset(out, 0, 16);
	memcpy(out, addr, alen);
	for (unsigned i = bits; i < alen * 8; i++)
		out[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
}

static int
family_args(int family, unsigned bits, size_t *alen, int *root)
{
	if (family == 4 && bits <= 32) {
		*alen = 4, *root = 0;
		return 0;
	}
	if (family == 6 && bits <= 128) {
		*alen = 16, *root = 1;
		return 0;
	}
	return TK_EINVAL;
}

int
tk_wg_aip_new(tk_wg_aip **out)
{
	tk_wg_aip *t = tk_calloc(1, sizeof(*t));

	if (t == NULL)
		return TK_ENOMEM;
	*out = t;
	return 0;
}

static void
free_nodes(aip_node *n)
{
	if (n == NULL)
		return;
	free_nodes(n->an_child[0]);
	free_nodes(n->an_child[1]);
	tk_free(n);
}

void
tk_wg_aip_free(tk_wg_aip *t)
{
	if (t == NULL)
		return;
	free_nodes(t->a_root[0]);
	free_nodes(t->a_root[1]);
	tk_free(t);
}

int
tk_wg_aip_insert(tk_wg_aip *t, int family, const uint8_t *addr,
    unsigned bits, void *peer)
{
	size_t alen;
	int r;
	uint8_t key[16];

	if (peer == NULL || family_args(family, bits, &alen, &r) != 0)
		return TK_EINVAL;
	mask_key(key, addr, alen, bits);
	aip_node **slot = &t->a_root[r];
	unsigned done = 0; /* leading bits of key matched by the path so far */
	while (*slot) {
		aip_node *n = *slot;
		unsigned lim = n->an_bits < bits ? n->an_bits : bits;
		unsigned c = common_bits(n->an_key, key, TK_MIN(done, lim),
		    lim);
		if (c == n->an_bits) {
			if (n->an_bits == bits) {
				if (n->an_peer == NULL)
					t->a_count++;
				n->an_peer = peer;
				return 0;
			}
			slot = &n->an_child[bit_at(key, n->an_bits)];
			done = n->an_bits + 1;
			continue;
		}
		/* n diverges from key at bit c (< n->an_bits) */
		aip_node *leaf = tk_calloc(1, sizeof(*leaf));
		if (leaf == NULL)
			return TK_ENOMEM;
		memcpy(leaf->an_key, key, 16);
		leaf->an_bits = bits;
		leaf->an_peer = peer;
		if (c == bits) {
			/* the new prefix sits above n */
			leaf->an_child[bit_at(n->an_key, bits)] = n;
			*slot = leaf;
		} else {
			aip_node *br = tk_calloc(1, sizeof(*br));
			if (br == NULL) {
				tk_free(leaf);
				return TK_ENOMEM;
			}
			mask_key(br->an_key, key, 16, c);
			br->an_bits = c;
			br->an_child[bit_at(key, c)] = leaf;
			br->an_child[bit_at(n->an_key, c)] = n;
			*slot = br;
		}
		t->a_count++;
		return 0;
	}
	aip_node *leaf = tk_calloc(1, sizeof(*leaf));
	if (leaf == NULL)
		return TK_ENOMEM;
	memcpy(leaf->an_key, key, 16);
	leaf->an_bits = bits;
	leaf->an_peer = peer;
	*slot = leaf;
	t->a_count++;
	return 0;
}

/* Folds away a peerless node with fewer than two children. */
static void
fixup(aip_node **slot)
{
	aip_node *n = *slot;

	if (n == NULL || n->an_peer != NULL)
		return;
	if (n->an_child[0] && n->an_child[1])
		return;
	*slot = n->an_child[0] ? n->an_child[0] : n->an_child[1];
	tk_free(n);
}

static int
remove_rec(tk_wg_aip *t, aip_node **slot, const uint8_t *key, unsigned bits,
    unsigned done)
{
	aip_node *n = *slot;

	if (n == NULL || n->an_bits > bits ||
	    common_bits(n->an_key, key, done, n->an_bits) < n->an_bits)
		return TK_ENOENT;
	if (n->an_bits == bits) {
		if (n->an_peer == NULL)
			return TK_ENOENT;
		n->an_peer = NULL;
		t->a_count--;
		fixup(slot);
		return 0;
	}
	int rv = remove_rec(t, &n->an_child[bit_at(key, n->an_bits)], key, bits,
	    n->an_bits + 1);
	if (rv == 0)
		fixup(slot);
	return rv;
}

int
tk_wg_aip_remove(tk_wg_aip *t, int family, const uint8_t *addr,
    unsigned bits)
{
	size_t alen;
	int r;
	uint8_t key[16];

	if (family_args(family, bits, &alen, &r) != 0)
		return TK_EINVAL;
	mask_key(key, addr, alen, bits);
	return remove_rec(t, &t->a_root[r], key, bits, 0);
}

static size_t
remove_peer_rec(aip_node **slot, void *peer)
{
	aip_node *n = *slot;
	size_t k = 0;

	if (n == NULL)
		return 0;
	k += remove_peer_rec(&n->an_child[0], peer);
	k += remove_peer_rec(&n->an_child[1], peer);
	if (n->an_peer == peer) {
		n->an_peer = NULL;
		k++;
	}
	fixup(slot);
	return k;
}

size_t
tk_wg_aip_remove_peer(tk_wg_aip *t, void *peer)
{
	size_t k;

	if (peer == NULL)
		return 0;
	k = remove_peer_rec(&t->a_root[0], peer) +
	    remove_peer_rec(&t->a_root[1], peer);
	t->a_count -= k;
	return k;
}

void *
tk_wg_aip_lookup(const tk_wg_aip *t, int family, const uint8_t *addr)
{
	unsigned max = family == 4 ? 32 : 128;
	const aip_node *n;
	void *best = NULL;
	unsigned done = 0; /* leading bits of addr the path has matched */

	if (family != 4 && family != 6)
		return NULL;
	n = t->a_root[family == 4 ? 0 : 1];
	while (n) {
		/* a child is strictly longer than its parent: done <= bits */
		if (common_bits(n->an_key, addr, done, n->an_bits) < n->an_bits)
			break;
		if (n->an_peer)
			best = n->an_peer;
		if (n->an_bits >= max)
			break;
		done = n->an_bits + 1;
		n = n->an_child[bit_at(addr, n->an_bits)];
	}
	return best;
}

static void
walk_rec(const aip_node *n, int family, void *peer, tk_wg_aip_visit_fn fn,
    void *arg)
{
	if (n == NULL)
		return;
	if (n->an_peer && (peer == NULL || n->an_peer == peer))
		fn(arg, family, n->an_key, n->an_bits, n->an_peer);
	walk_rec(n->an_child[0], family, peer, fn, arg);
	walk_rec(n->an_child[1], family, peer, fn, arg);
}

void
tk_wg_aip_walk(const tk_wg_aip *t, void *peer, tk_wg_aip_visit_fn fn,
    void *arg)
{
	walk_rec(t->a_root[0], 4, peer, fn, arg);
	walk_rec(t->a_root[1], 6, peer, fn, arg);
}

size_t
tk_wg_aip_count(const tk_wg_aip *t)
{
	return t->a_count;
}
