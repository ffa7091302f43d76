#include "tk/core.h"
#include "tk_test.h"

void register_kat(void);
void register_noise_kat(void);

int
main(int argc, char **argv)
{
	tk_init();
	return tk_test_main(argc, argv, register_kat, register_noise_kat, NULL);
}
