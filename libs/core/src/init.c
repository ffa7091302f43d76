#include <sodium.h>

#include "tk/core.h"

int
tk_init(void)
{
	/* sodium_init is idempotent and thread-safe; 1 means "already done". */
	return sodium_init() < 0 ? TK_EINTERNAL : 0;
}
