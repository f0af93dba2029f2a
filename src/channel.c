/* channel.c: channel names. */
#include <string.h>

#include "channel.h"

static const char *const channel_names[CH_COUNT] = { "email", "sms", "push" };

int channel_parse(const char *name, int allow_all)
{
	for (int i = 0; i < CH_COUNT; i++)
		if (strcmp(name, channel_names[i]) == 0)
			return i;
	if (allow_all && strcmp(name, "all") == 0)
		return CH_ALL;
	return -2;
}

const char *channel_name(int ch)
{
	if (ch >= 0 && ch < CH_COUNT)
		return channel_names[ch];
	return "all";
}
