/* test_contract.c: hand-encoded fields against their JSON sources. */
#ifndef TEST_CONTRACT_H
#define TEST_CONTRACT_H

#include <stddef.h>

#include "mapstate.h"

/* After a successful apply of p[0..n) to m (before: m's snapshot before
 * it): CU failures for every field of m's snapshot that differs from the
 * JSON value it mirrors. */
void contract_check(const ctrldi_map *m, const tk_buf *before,
    const char *p, size_t n);
void register_contract(void);

#endif
