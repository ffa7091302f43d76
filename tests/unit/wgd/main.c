#include "tk_test.h"

void register_wgd(void);
void register_probe(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_wgd, register_probe, NULL);
}
