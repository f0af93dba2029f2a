/* address.h: recipient validation and normalisation (pure).
 * Opt-outs and suppressions compare normalised addresses. */
#ifndef ROUSE_ADDRESS_H
#define ROUSE_ADDRESS_H

#include <stddef.h>

/* Validates an email addr-spec ("local@domain", no spaces, no CR/LF/NUL,
 * no display name, <= 254 bytes, domain of dot-separated labels) and
 * writes its normalised form (whole address lower-cased, ASCII only) to
 * out. Returns 0, or -1 when invalid. */
int address_email_normalize(const char *addr, char *out, size_t outlen);

/* Validates E.164: '+' then 8..15 digits, first digit not 0. Copies it to
 * out unchanged. Returns 0 or -1. */
int address_phone_normalize(const char *num, char *out, size_t outlen);

/* Normalises any address for opt-out lookups: phones as E.164, anything
 * with '@' as email; returns -1 when neither. */
int address_normalize(const char *addr, char *out, size_t outlen);

#endif
