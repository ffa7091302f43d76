/* The topic table of tk/bus_topics.h. */
#include <string.h>

#include "tk/bus_topics.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus/v1/derp.pb-c.h"
#include "tk/bus/v1/wg.pb-c.h"

const tk_bus_topic_info tk_bus_topics[] = {
	{ TK_TOPIC_NETMAP, "ctrld", &tk__bus__v1__netmap__descriptor,
	    &tk__bus__v1__netmap_delta__descriptor, false },
	{ TK_TOPIC_KEYS, "wgd", &tk__bus__v1__keys__descriptor,
	    &tk__bus__v1__keys__descriptor, false },
	{ TK_TOPIC_ENDPOINTS, "wgd", &tk__bus__v1__endpoints__descriptor,
	    &tk__bus__v1__endpoints__descriptor, false },
	{ TK_TOPIC_DERP, "derpd", &tk__bus__v1__derp_state__descriptor,
	    &tk__bus__v1__derp_state__descriptor, false },
	{ TK_TOPIC_PATHS, "wgd", &tk__bus__v1__peer_paths__descriptor,
	    &tk__bus__v1__peer_paths__descriptor, false },
	{ NULL, NULL, NULL, NULL, false },
};

const tk_bus_topic_info *
tk_bus_topic_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (const tk_bus_topic_info *t = tk_bus_topics; t->name != NULL; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}
