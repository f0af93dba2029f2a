/* utf8.h: strict UTF-8 decoding (pure), shared by the modules that must
 * judge text byte by byte (SMS segmenting, email header encoding). */
#ifndef ROUSE_UTF8_H
#define ROUSE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[0..len) (len >= 1) into *cp (may be NULL).
 * Returns its length in bytes, or 0 when the sequence is not valid UTF-8:
 * overlong forms, surrogates, code points above U+10FFFF, truncation. */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

#endif
