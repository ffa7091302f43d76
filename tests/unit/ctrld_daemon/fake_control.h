/* A scripted, hostile ts2021 control server for tests (fake_control.c). */
#ifndef FAKE_CONTROL_H
#define FAKE_CONTROL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum {
	FAKE_GOOD = 0,	      /* one good netmap, then nothing */
	FAKE_GARBAGE_JSON,    /* then a frame of broken JSON */
	FAKE_BAD_RECORD,      /* then a Noise record that does not authenticate */
	FAKE_HUGE_LENGTH,     /* then a frame length of 2 GiB */
};

typedef struct fake_control {
	int mode;
	int lfd;
	uint16_t port;
	pthread_t thr;
	volatile bool stop;
	uint8_t priv[32], pub[32];
	int maps_served, conns; /* atomics */
	/* the upgrade's response head (status line to the blank line); NULL:
	 * Go's controlhttpserver order.  Set before the first connection. */
	const char *upgrade_head;
	/* send map frames as streaming zstd, without a content size */
	bool zstd_no_size;
	/* what the last requests carried, under mu: the register body and
	 * each request's Ts-Lb header values ("a,b") */
	pthread_mutex_t mu;
	char reg_body[8192];
	char reg_lb[200], map_lb[200];
	int registers;
} fake_control;

int fake_control_start(fake_control *f, int mode);
void fake_control_stop(fake_control *f);

#endif
