/*
 * Open-addressing hash map from 32-byte keys to pointers.  Keys come from
 * the network (a client chooses its key), so slots are picked with keyed
 * SipHash (libsodium crypto_shorthash) under a per-server random key.
 */
#include <string.h>

#include <sodium.h>

#include "server_int.h"
#include "tk/err.h"
#include "tk/mem.h"

void
derpdi_map_init(derpdi_map *m, const uint8_t *hkey)
{
	memset(m, 0, sizeof(*m));
	m->hkey = hkey;
}

void
derpdi_map_fini(derpdi_map *m)
{
	tk_free(m->ents);
	m->ents = NULL;
	m->cap = m->len = m->used = 0;
}

static size_t
slot(const derpdi_map *m, const uint8_t *key)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, key, TK_DERP_KEY_LEN, m->hkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (m->cap - 1));
}

static derpdi_map_ent *
find(const derpdi_map *m, const uint8_t *key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = slot(m, key), k = 0; k < m->cap;
	     i = (i + 1) & (m->cap - 1), k++) {
		derpdi_map_ent *e = &m->ents[i];
		if (e->val == NULL && !e->tomb)
			return NULL;
		if (e->val != NULL && memcmp(e->key, key, TK_DERP_KEY_LEN) == 0)
			return e;
	}
	return NULL;
}

void *
derpdi_map_get(const derpdi_map *m, const uint8_t key[TK_DERP_KEY_LEN])
{
	derpdi_map_ent *e = find(m, key);
	return e ? e->val : NULL;
}

static int
grow(derpdi_map *m)
{
	size_t ncap = m->cap ? m->cap : 16;
	if (m->len * 2 >= ncap)
		ncap *= 2;
	derpdi_map_ent *ne = tk_calloc(ncap, sizeof(*ne));
	if (ne == NULL)
		return TK_ENOMEM;
	derpdi_map old = *m;
	m->ents = ne;
	m->cap = ncap;
	m->len = m->used = 0;
	for (size_t i = 0; i < old.cap; i++) {
		derpdi_map_ent *e = &old.ents[i];
		if (e->val == NULL)
			continue;
		size_t j = slot(m, e->key);
		while (m->ents[j].val != NULL)
			j = (j + 1) & (m->cap - 1);
		m->ents[j] = *e;
		m->len++;
		m->used++;
	}
	tk_free(old.ents);
	return 0;
}

int
derpdi_map_put(derpdi_map *m, const uint8_t key[TK_DERP_KEY_LEN], void *val)
{
	derpdi_map_ent *e = find(m, key);
	if (e != NULL) {
		e->val = val;
		return 0;
	}
	if ((m->used + 1) * 4 >= m->cap * 3) {
		int rc = grow(m);
		if (rc != 0)
			return rc;
	}
	size_t i = slot(m, key);
	while (m->ents[i].val != NULL)
		i = (i + 1) & (m->cap - 1);
	e = &m->ents[i];
	if (!e->tomb)
		m->used++;
	memcpy(e->key, key, TK_DERP_KEY_LEN);
	e->val = val;
	e->tomb = false;
	m->len++;
	return 0;
}

void
derpdi_map_del(derpdi_map *m, const uint8_t key[TK_DERP_KEY_LEN])
{
	derpdi_map_ent *e = find(m, key);
	if (e == NULL)
		return;
	e->val = NULL;
	e->tomb = true;
	m->len--;
	if (m->len == 0) {
		/* cheap full reset keeps probe chains short */
		memset(m->ents, 0, m->cap * sizeof(*m->ents));
		m->used = 0;
	}
}

derpdi_map_ent *
derpdi_map_next(const derpdi_map *m, size_t *i)
{
	for (; *i < m->cap; (*i)++) {
		if (m->ents[*i].val != NULL)
			return &m->ents[(*i)++];
	}
	return NULL;
}
