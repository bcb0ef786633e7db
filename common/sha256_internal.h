/* sha256_internal.h - what sha256.c shares with the other libcrypto users in common/
 * (internal). */
#ifndef SPOOL_SHA256_INTERNAL_H
#define SPOOL_SHA256_INTERNAL_H

#include <openssl/evp.h>

/* libcrypto's HMAC, fetched from the default provider once and kept for the process; a
 * fetch that fails is tried again on the next call. NULL when it fails. Not freed. */
EVP_MAC *sp__hmac(void);

#endif
