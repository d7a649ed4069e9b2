/*
 * Reads of the store off the loop for the API's handlers (store_reads.h): the pool's
 * done callback takes the deferred request up again (orc_api_req_continue) to answer.
 */
#include <stdio.h>

#include "store_reads.h"

static void read_gone(orc_api_req_t *req, void *data)
{
    (void)req;
    ((struct orc_api_read *)data)->req = NULL;
}

static int read_finish(orc_api_req_t *req, void *data)
{
    struct orc_api_read *r = data;
    int rc = r->finish(req, r);

    r->release(r);
    return rc;
}

static void read_done(orc_read_t *read)
{
    struct orc_api_read *r = (struct orc_api_read *)read;

    if (r->req == NULL)
        r->release(r);
    else
        orc_api_req_continue(r->req, read_finish, r);
}

int orc_api_store_read(orc_api_req_t *req, orc_readers_t *readers, orc_store_t *store,
                       struct orc_api_read *r)
{
    int rc;

    r->req = req;
    if (readers == NULL) {
        r->read.errmsg[0] = '\0';
        r->read.rc = r->fn(store, &r->read);
        if (r->read.rc < 0)
            snprintf(r->read.errmsg, sizeof(r->read.errmsg), "%s", orc_store_errmsg(store));
        return read_finish(req, r);
    }
    rc = orc_readers_submit(readers, &r->read, r->fn, read_done);
    if (rc < 0) {
        r->release(r);
        orc_api_set_header(req, "retry-after", "1");
        return orc_api_req_fail(req, 503, "the store's readers are all busy; retry shortly");
    }
    if (orc_api_req_defer(req, read_gone, r) < 0) {
        r->req = NULL; /* released when the read is done */
        return orc_api_req_fail(req, 500, "cannot wait for the store");
    }
    return 0;
}
