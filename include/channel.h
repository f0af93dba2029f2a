/* channel.h: the three delivery channels, shared by every module. */
#ifndef ROUSE_CHANNEL_H
#define ROUSE_CHANNEL_H

enum channel { CH_EMAIL = 0, CH_SMS = 1, CH_PUSH = 2, CH_COUNT = 3 };

/* Wildcards used where a rule or an opt-out covers every channel. */
#define CH_ALL (-1)

/* "email" | "sms" | "push" -> channel; "all" -> CH_ALL when allow_all.
 * Returns -2 when the name is not a channel. */
int channel_parse(const char *name, int allow_all);

/* channel -> "email" | "sms" | "push" | "all" (static string). */
const char *channel_name(int ch);

#endif
