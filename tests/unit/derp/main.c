#include "tk_test.h"

void register_derp_frame(void);
void register_derp_info(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_derp_frame, register_derp_info,
	    NULL);
}
