/* Smoke test: the library links and the error table reads well. */
#include "testutil.h"

static void error_names(void **state)
{
    (void)state;
    assert_string_equal(orc_err_name(ORC_ETOSCA), "ORC_ETOSCA");
    assert_string_equal(orc_strerror(ORC_ENOMEM), "out of memory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(error_names)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
