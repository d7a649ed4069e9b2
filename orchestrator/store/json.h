/*
 * JSON codec of the store's records for the REST API (API.md): a deployment
 * and a resource exactly as the original orchestrator's clients read them,
 * and an event for the events endpoint. The HTTP layer calls these and sends
 * the result; nothing here knows about HTTP beyond the base URL of links.
 *
 * base_url is the absolute prefix of links, "scheme://host[:port][/prefix]"
 * (trailing slashes ignored), built from the request's Host or a configured
 * public URL; NULL or "" makes links relative ("/deployments/...").
 * On success *out is a new object owned by the caller (json_decref); it
 * shares nothing with the record. ORC_EINVAL for a NULL argument or a record
 * whose enum is out of range, ORC_ENOMEM.
 */
#ifndef ORC_STORE_JSON_H
#define ORC_STORE_JSON_H

#include <jansson.h>

#include "store.h"

/* {"uuid", "creationTime", "updateTime", "status", ["statusReason"], "task",
 *  "outputs" ({} when none), ["physicalId"], ["callback"], ["userGroup"],
 *  ["cloudProviderName"], ["cloudProviderEndpoint"], "createdBy":{"issuer",
 *  "subject"}, "links":[self, resources, template]}; [] fields only when set;
 * times "yyyy-MM-dd'T'HH:mm+0000" (UTC, minute precision). */
int orc_deployment_to_json(const orc_deployment_t *d, const char *base_url, json_t **out);
/* The same object as compact JSON text, written directly (the API's GET of a
 * deployment sends it as is). *text is freed with orc_free; *len (may be
 * NULL) is its length. */
int orc_deployment_json_text(const orc_deployment_t *d, const char *base_url, char **text,
                             size_t *len);

/* {"uuid", "creationTime", "updateTime", ["physicalId"], "state",
 *  "toscaNodeType", "toscaNodeName", "requiredBy" ([] when none),
 *  ["metadata"], "links":[deployment, self]}. */
int orc_resource_to_json(const orc_resource_t *r, const char *base_url, json_t **out);

/* {"id", "time" (API format), "timeMs", "type", "message", ["data"]}. */
int orc_event_to_json(const orc_event_t *e, json_t **out);

#endif
