#include "tk_test.h"

void register_derp_frame(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_derp_frame, NULL);
}
