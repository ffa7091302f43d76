#include "tk_test.h"

void register_proto(void);
void register_batch(void);
void register_transport(void);
void register_rpc(void);
void register_topic(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_proto, register_batch,
	    register_transport, register_rpc, register_topic, NULL);
}
