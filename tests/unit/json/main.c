#include "tk_test.h"

void register_json(void);
void register_json_tape(void);

int
main(int argc, char **argv)
{
	return tk_test_main(argc, argv, register_json, register_json_tape, NULL);
}
