#include "tk_test.h"

void register_embed(void);
void register_lbreq(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_embed, register_lbreq, NULL);
}
