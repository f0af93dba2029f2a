/* rousectl.c: placeholder main, replaced by the client. */
#include <stdio.h>
int main(void) { puts("rousectl " ROUSE_VERSION); return 0; }
