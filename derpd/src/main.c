/*
 * derpd: `derpd client ...` (the node's DERP connections) or
 * `derpd server ...` (a self-hosted DERP relay).
 */
#include <stdio.h>
#include <string.h>

#include "derpd/derpd_client.h"

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "client") == 0)
		return derpd_client_main(argc - 1, argv + 1);
	fprintf(stderr, "usage: derpd client [options]   (the node's DERP path)\n"
	    "       derpd client --help\n");
	return 2;
}
