/*
 * The project's one integer error space. 0 is success, negative is failure.
 * libuv codes (UV_E*) and negated errno values pass through unchanged; our own
 * codes live far below them and come from one X-macro, which also generates
 * orc_strerror() and orc_err_name(). Numbers are append-only: they are part of
 * the REST API and of the driver ABI. Header-only so that every component
 * (libtosca, the daemon, drivers, gpu-agent) shares it without a link step.
 */
#ifndef ORC_ERRNO_H
#define ORC_ERRNO_H

#include <string.h>

#define ORC_ERRNO_MAP(X)                                                       \
    X(EINVAL, "invalid argument")                                              \
    X(ENOMEM, "out of memory")                                                 \
    X(ENOTFOUND, "no such object")                                             \
    X(ECONFLICT, "object state conflicts with the request")                   \
    X(ETOSCA, "service template is invalid")                                   \
    X(EDRIVER, "provider driver reported a failure")                           \
    X(EABI, "plugin was built for another driver ABI")                         \
    X(ESSH, "ssh transport or authentication failure")                         \
    X(EHTTP, "http transfer failure")                                          \
    X(ECANCELED, "operation canceled")                                         \
    X(ENOTSUP, "operation not supported")                                      \
    X(EAGAIN, "operation would block")                                         \
    X(ELIMIT, "input exceeds a configured limit")                              \
    X(EDENIED, "access outside the allowed roots or allowlist")               \
    X(EIO, "input/output error")                                               \
    X(EFORMAT, "malformed input")                                              \
    X(EUSAGE, "bad command-line usage")
/* append only */

typedef enum {
    ORC__EBASE = -20000,
#define ORC__ERR_ENUM(name, msg) ORC_##name,
    ORC_ERRNO_MAP(ORC__ERR_ENUM)
#undef ORC__ERR_ENUM
        ORC__ELAST
} orc_errno_t;

/* Returns a static message for rc: ours, or strerror() for a negated errno. */
static inline const char *orc_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
#define ORC__ERR_MSG(name, msg)                                                \
    case ORC_##name:                                                           \
        return msg;
        ORC_ERRNO_MAP(ORC__ERR_MSG)
#undef ORC__ERR_MSG
    default:
        return rc < 0 && rc > ORC__EBASE ? strerror(-rc) : "unknown error";
    }
}

/* Returns the symbolic name ("ORC_ETOSCA") of one of our codes, or "ORC_E?". */
static inline const char *orc_err_name(int rc)
{
    switch (rc) {
    case 0:
        return "OK";
#define ORC__ERR_NAME(name, msg)                                               \
    case ORC_##name:                                                           \
        return "ORC_" #name;
        ORC_ERRNO_MAP(ORC__ERR_NAME)
#undef ORC__ERR_NAME
    default:
        return "ORC_E?";
    }
}

#endif
