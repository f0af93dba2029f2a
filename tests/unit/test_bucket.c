/* test_bucket.c: transport token buckets. */
#include "bucket.h"
#include "testutil.h"

static void test_rate_and_burst(void)
{
	struct bucket_conf conf = { .set = true, .rate = 10, .burst = 5 };
	struct bucket b;
	bucket_init(&b, &conf, 0);
	ASSERT_EQ_INT(bucket_available(&b, 0), 5);
	bucket_take(&b, 5, 0);
	ASSERT_EQ_INT(bucket_available(&b, 0), 0);
	ASSERT_EQ_INT(bucket_wait_ms(&b, 0), 100); /* 10/s: one per 100 ms */
	ASSERT_EQ_INT(bucket_available(&b, 99), 0);
	ASSERT_EQ_INT(bucket_available(&b, 100), 1);
	/* never more than burst, however long it idles */
	ASSERT_EQ_INT(bucket_available(&b, 100000), 5);
	/* in any second at most burst + rate pass */
	long passed = 0;
	for (int64_t t = 100000; t < 101000; t++) {
		long n = bucket_available(&b, t);
		bucket_take(&b, (double)n, t);
		passed += n;
	}
	ASSERT_TRUE(passed <= 15);
	ASSERT_TRUE(passed >= 14);
}

static void test_debt(void)
{
	struct bucket_conf conf = { .set = true, .rate = 1, .burst = 2 };
	struct bucket b;
	bucket_init(&b, &conf, 0);
	bucket_take(&b, 4, 0); /* an SMS of 4 segments: 2 tokens of debt */
	ASSERT_EQ_INT(bucket_available(&b, 0), 0);
	ASSERT_EQ_INT(bucket_wait_ms(&b, 0), 3000);
	ASSERT_EQ_INT(bucket_available(&b, 2999), 0);
	ASSERT_EQ_INT(bucket_available(&b, 3000), 1);
}

static void test_disabled_and_pause(void)
{
	struct bucket b;
	bucket_init(&b, NULL, 0);
	ASSERT_TRUE(bucket_available(&b, 0) > 1000);
	ASSERT_EQ_INT(bucket_wait_ms(&b, 0), 0);
	bucket_pause(&b, 3000);
	ASSERT_EQ_INT(bucket_available(&b, 2999), 0);
	ASSERT_EQ_INT(bucket_wait_ms(&b, 1000), 2000);
	ASSERT_TRUE(bucket_available(&b, 3000) > 1000);
}

int main(void)
{
	test_rate_and_burst();
	test_debt();
	test_disabled_and_pause();
	TEST_DONE();
}
