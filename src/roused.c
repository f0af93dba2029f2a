/* roused.c: placeholder main, replaced by the daemon. */
#include <stdio.h>
int main(void) { puts("roused " ROUSE_VERSION); return 0; }
