/*
 * ts2021 wire constants (control-protocol.md §3-§5; Tailscale's
 * control/controlbase and controlhttp): the Noise prologue, frame types
 * and sizes, the early payload, the upgrade token.  ts2021.h (the codec)
 * includes this.
 */
#ifndef CTRLD_TS2021_WIRE_H
#define CTRLD_TS2021_WIRE_H

#define TS2021_PROLOGUE_PREFIX "Tailscale Control Protocol v"
#define TS2021_MSG_INITIATION 0x01
#define TS2021_MSG_RESPONSE   0x02
#define TS2021_MSG_ERROR      0x03
#define TS2021_MSG_RECORD     0x04
#define TS2021_INIT_LEN	      101 /* 2 version + 1 type + 2 len + 96 */
#define TS2021_INIT_PAYLOAD   96
#define TS2021_RESP_LEN	      51  /* 1 type + 2 len + 48 */
#define TS2021_RESP_PAYLOAD   48
#define TS2021_HDR_LEN	      3	  /* type + be16 length */
#define TS2021_MAX_FRAME      4096
#define TS2021_MAX_CIPHER     (TS2021_MAX_FRAME - TS2021_HDR_LEN) /* 4093 */
#define TS2021_MAX_PLAIN      (TS2021_MAX_CIPHER - 16)		  /* 4077 */
/* Early payload ("EarlyNoise") magic, then be32 length, then JSON. */
#define TS2021_EARLY_MAGIC    "\xff\xff\xffTS"
#define TS2021_EARLY_MAX      (10u << 20)
/* controlhttpcommon.UpgradeHeaderValue: the Upgrade header, both ways */
#define TS2021_UPGRADE	      "tailscale-control-protocol"

#endif
