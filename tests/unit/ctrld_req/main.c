#include "tk_test.h"

void register_requests(void);
void register_register(void);
void register_prefs(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_requests, register_register,
	    register_prefs, NULL);
}
