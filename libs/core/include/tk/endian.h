/*
 * Load/store helpers for wire data.  Never cast packed structs onto network
 * bytes: these work at any alignment and keep UBSan quiet.
 */
#ifndef TK_ENDIAN_H
#define TK_ENDIAN_H

#include <stdint.h>

static inline uint16_t
tk_be16_load(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t
tk_be32_load(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t
tk_be64_load(const uint8_t *p)
{
	return (uint64_t)tk_be32_load(p) << 32 | tk_be32_load(p + 4);
}

static inline uint16_t
tk_le16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t
tk_le32_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static inline uint64_t
tk_le64_load(const uint8_t *p)
{
	return (uint64_t)tk_le32_load(p) | (uint64_t)tk_le32_load(p + 4) << 32;
}

static inline void
tk_be16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
tk_be32_store(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
tk_be64_store(uint8_t *p, uint64_t v)
{
	tk_be32_store(p, (uint32_t)(v >> 32));
	tk_be32_store(p + 4, (uint32_t)v);
}

static inline void
tk_le16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
tk_le32_store(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void
tk_le64_store(uint8_t *p, uint64_t v)
{
	tk_le32_store(p, (uint32_t)v);
	tk_le32_store(p + 4, (uint32_t)(v >> 32));
}

#endif
