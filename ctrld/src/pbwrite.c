/* ctrld's protobuf writer (pbwrite_int.h). */
#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "pbwrite_int.h"

void
ctrldi_pbw_fini(ctrldi_pbw *w)
{
	tk_free(w->p);
	memset(w, 0, sizeof(*w));
}

bool
ctrldi_pbw_grow(ctrldi_pbw *w, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (w->err)
		return false;
	if (extra > SIZE_MAX / 4 - w->len) {
		w->err = TK_ENOMEM;
		return false;
	}
	cap = w->cap ? w->cap : 4096;
	while (cap - w->len < extra)
		cap *= 2;
	p = tk_realloc(w->p, cap);
	if (p == NULL) {
		w->err = TK_ENOMEM;
		return false;
	}
	w->p = p;
	w->cap = cap;
	return true;
}
