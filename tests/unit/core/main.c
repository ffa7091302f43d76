#include "tk_test.h"

void register_enc(void);
void register_keys(void);
void register_buf(void);
void register_misc(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_enc, register_keys,
	    register_buf, register_misc, NULL);
}
