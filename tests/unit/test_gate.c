/* test_gate.c: per-user cap arithmetic (delivery-rules §6). */
#include "gate.h"
#include "testutil.h"

#define H 3600000LL
#define D (24 * H)

static void test_single_rule(void)
{
	struct cap_rule rules[] = { { CH_EMAIL, 1, 24 * H } };
	struct gate_send sends[] = { { CH_EMAIL, 1000 } };
	size_t rule = 99;
	/* nothing sent yet: allowed */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 1, CH_EMAIL, NULL, 0, 2000,
					  &rule), 0);
	/* one email sent at t=1000: the next waits until exactly +24h */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 1, CH_EMAIL, sends, 1, 5000,
					  &rule), 1000 + 24 * H);
	ASSERT_EQ_INT(rule, 0);
	/* at that exact instant the window no longer counts it */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 1, CH_EMAIL, sends, 1,
					  1000 + 24 * H, &rule), 0);
	/* one millisecond before, still held */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 1, CH_EMAIL, sends, 1,
					  1000 + 24 * H - 1, &rule),
		      1000 + 24 * H);
	/* other channels are not counted by an email rule */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 1, CH_SMS, sends, 1, 5000,
					  &rule), 0);
}

static void test_cross_channel(void)
{
	struct cap_rule rules[] = { { CH_EMAIL, 1, 24 * H },
				    { CH_ALL, 3, 7 * D } };
	struct gate_send sends[] = { { CH_EMAIL, 100 }, { CH_SMS, 200 },
				     { CH_PUSH, 300 } };
	size_t rule = 99;
	/* a fourth job on any channel waits for the oldest of the 3 most
	 * recent sends to leave the 7-day window */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 2, CH_SMS, sends, 3, 400,
					  &rule), 100 + 7 * D);
	ASSERT_EQ_INT(rule, 1);
	/* for email both rules bind; the later instant wins */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 2, CH_EMAIL, sends, 3, 400,
					  &rule), 100 + 7 * D);
	/* two sends only: sms passes, email still held by its own rule */
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 2, CH_SMS, sends + 1, 2, 400,
					  &rule), 0);
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 2, CH_EMAIL, sends, 2, 400,
					  &rule), 100 + 24 * H);
	ASSERT_EQ_INT(rule, 0);
	ASSERT_EQ_INT(gate_longest_window(rules, 2, CH_SMS), 7 * D);
	ASSERT_EQ_INT(gate_longest_window(rules, 1, CH_SMS), 0);
}

static void test_max_th_most_recent(void)
{
	/* max 2 per hour with sends at 10, 20, 30 (unsorted input): the
	 * 2nd most recent (20) + 1h is when the next may go */
	struct cap_rule rules[] = { { CH_PUSH, 2, H } };
	struct gate_send sends[] = { { CH_PUSH, 30 }, { CH_PUSH, 10 },
				     { CH_PUSH, 20 } };
	ASSERT_EQ_INT(gate_cap_allowed_at(rules, 1, CH_PUSH, sends, 3, 40,
					  NULL), 20 + H);
}

static void test_describe(void)
{
	char buf[64];
	struct cap_rule a = { CH_EMAIL, 1, 24 * H }, b = { CH_ALL, 3, 7 * D },
			c = { CH_SMS, 5, 90 * 60000LL };
	gate_rule_describe(&a, buf, sizeof buf);
	ASSERT_EQ_STR(buf, "limit email 1/24h");
	gate_rule_describe(&b, buf, sizeof buf);
	ASSERT_EQ_STR(buf, "limit * 3/7d");
	gate_rule_describe(&c, buf, sizeof buf);
	ASSERT_EQ_STR(buf, "limit sms 5/90m");
}

int main(void)
{
	test_single_rule();
	test_cross_channel();
	test_max_th_most_recent();
	test_describe();
	TEST_DONE();
}
