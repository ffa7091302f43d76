#include "server_int.h"
#include "tk/err.h"

int
derpdi_verify_start(derpdi_conn *c)
{
	(void)c;
	return TK_ENOTSUP;
}

void
derpdi_verify_cancel(derpdi_conn *c)
{
	c->verify = NULL;
}
