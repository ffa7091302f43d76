#include "tk_test.h"

void register_wgd(void);
void register_probe(void);
void register_disco(void);
void register_path(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_wgd, register_probe, register_disco, register_path, NULL);
}
