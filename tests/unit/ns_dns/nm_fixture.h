/*
 * A fixed netmap for MagicDNS tests (unit tests and tk-ns-testsrv):
 *   self   self.tail-test.ts.net.   100.64.0.1  fd7a:115c:a1e0::1
 *   peer   peer1.tail-test.ts.net.  100.64.0.2  fd7a:115c:a1e0::2
 *   peer   Peer2.Tail-Test.ts.net.  100.64.0.3  (no IPv6)
 *   extra  db.internal.  A 10.0.0.5, AAAA fd00::5
 *          many.internal. A 10.0.1.1 .. 10.0.1.40 (more than 512 bytes)
 *   routes corp.example.   -> corp_up1 [, corp_up2]; both NULL: 10.1.1.1 and
 *                             10.1.1.2:5353 (never sent to: unit tests)
 *          b.corp.example. -> 10.2.2.2
 *          doh.example.    -> https://dns.example/dns-query (DoH only)
 *          local.example.  -> (none: answered locally)
 *   resolvers 1.1.1.1, [2606:4700:4700::1111]:53; MagicDNS on (Proxied).
 * Everything is malloc'd: free with nm_fixture_free.
 */
#ifndef NS_NM_FIXTURE_H
#define NS_NM_FIXTURE_H

#include "tk/bus/v1/ctrl.pb-c.h"

#define NM_FIXTURE_MANY 40

Tk__Bus__V1__Netmap *nm_fixture_new(const char *corp_up1,
    const char *corp_up2);
void nm_fixture_free(Tk__Bus__V1__Netmap *nm);

#endif
