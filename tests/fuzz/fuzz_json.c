/*
 * Fuzz libs/json: the bounded parser and every typed getter over each member
 * of a parsed object (and of objects inside arrays), plus the prefix,
 * addr:port and time parsers on the raw input.  Whatever a text parser
 * accepts must format and re-parse to the same value.
 */
#include <stdlib.h>
#include <string.h>

#include "tk/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
probe(const json_t *obj)
{
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)obj, key, val) {
		int64_t i;
		uint64_t u;
		bool b;
		const char *s;
		size_t n;
		json_t *sub;
		tk_node_pub nk;
		tk_disco_pub dk;
		tk_machine_pub mk;
		tk_ipprefix p;
		tk_ipport e;
		tk_json_time t;

		tk_json_get_int64(obj, key, &i);
		tk_json_get_uint64(obj, key, &u);
		tk_json_get_bool(obj, key, &b);
		tk_json_get_str(obj, key, &s, &n);
		tk_json_get_node_pub(obj, key, &nk);
		tk_json_get_disco_pub(obj, key, &dk);
		tk_json_get_machine_pub(obj, key, &mk);
		tk_json_get_prefix(obj, key, &p);
		tk_json_get_ipport(obj, key, &e);
		tk_json_get_time(obj, key, &t);
		if (tk_json_get_array(obj, key, 1000, &sub) == 0) {
			size_t idx;
			json_t *el;

			json_array_foreach(sub, idx, el)
				if (json_is_object(el))
					probe(el);
		}
		if (tk_json_get_object(obj, key, &sub) == 0)
			probe(sub);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	tk_json_limits lim = { 1 << 20, 32 };
	json_t *v = NULL;
	tk_ipprefix p, p2;
	tk_ipport e, e2;
	tk_json_time t, t2;
	char text[TK_NETADDR_TEXT_MAX], ts[48];

	if (tk_json_parse(&v, s, size, &lim, NULL, 0) == 0) {
		if (json_is_object(v))
			probe(v);
		json_decref(v);
	}
	if (tk_ipprefix_parse(&p, s, size) == 0) {
		tk_ipprefix_format(&p, text);
		if (tk_ipprefix_parse(&p2, text, strlen(text)) != 0 ||
		    memcmp(&p, &p2, sizeof(p)) != 0)
			abort();
	}
	if (tk_ipport_parse(&e, s, size) == 0) {
		tk_ipport_format(&e, text);
		if (tk_ipport_parse(&e2, text, strlen(text)) != 0 ||
		    memcmp(&e, &e2, sizeof(e)) != 0)
			abort();
	}
	if (tk_json_time_parse(&t, s, size) == 0) {
		tk_json_time_format(&t, ts);
		if (tk_json_time_parse(&t2, ts, strlen(ts)) != 0 ||
		    t.sec != t2.sec || t.nsec != t2.nsec)
			abort();
	}
	return 0;
}
