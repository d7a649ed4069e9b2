/*
 * The user data of a server (ost.h): a `#!/bin/sh` script that cloud-init runs
 * once at first boot. It records what the node is (state_dir/node.env), installs
 * gpu-agent with the site's agent_install command when agent_path is not there
 * yet, and runs `gpu-agent check` at the site's level, so that the console log
 * (and state_dir/gpu-agent.log) shows the node's GPU verdict. Then it starts
 * one `gpu-agent run` per workload of the node's boot spec (ORC_DRV_CAP_AGENT_BOOT)
 * in the background; each reports to the daemon's agent endpoint. Every value
 * comes as a single-quoted shell word (orc_ssh_quote): the fixed text around
 * them only expands "$VARIABLES", so no value is ever parsed as code.
 */
#include <stdio.h>
#include <string.h>

#include "ost.h"

static const char script_body[] =
    "mkdir -p \"$STATE\" 2>/dev/null && [ -w \"$STATE\" ] || STATE=\"${HOME:-/tmp}/.orchestrator\"\n"
    "mkdir -p \"$STATE\"\n"
    "LOG=\"$STATE/gpu-agent.log\"\n"
    "say() { echo \"orc: $*\"; }\n"
    "{\n"
    "say \"node $ORC_NAME of deployment $ORC_DEPLOYMENT (site $ORC_SITE, flavor $ORC_FLAVOR, "
    "GPUs: $ORC_GPUS $ORC_GPU_MODEL)\"\n"
    "printf 'ORC_NAME=%s\\nORC_DEPLOYMENT=%s\\nORC_SITE=%s\\nORC_FLAVOR=%s\\nORC_GPUS=%s\\n"
    "ORC_GPU_MODEL=%s\\nORC_AGENT=%s\\n' \"$ORC_NAME\" \"$ORC_DEPLOYMENT\" \"$ORC_SITE\" "
    "\"$ORC_FLAVOR\" \"$ORC_GPUS\" \"$ORC_GPU_MODEL\" \"$AGENT\" > \"$STATE/node.env\"\n"
    "if [ ! -x \"$AGENT\" ] && [ -n \"$INSTALL\" ]; then\n"
    "    say \"installing gpu-agent to $AGENT\"\n"
    "    if sh -c \"$INSTALL\"; then say 'install: done'; else say \"install: failed "
    "(status $?)\"; fi\n"
    "fi\n"
    "if [ -x \"$AGENT\" ]; then\n"
    "    say \"gpu-agent $(\"$AGENT\" version 2>&1)\"\n"
    "    \"$AGENT\" info > \"$STATE/info.json\" 2>&1 && say \"inventory in $STATE/info.json\"\n"
    "    if [ \"$LEVEL\" != none ]; then\n"
    "        \"$AGENT\" check --level \"$LEVEL\" > \"$STATE/check.json\"\n"
    "        rc=$?\n"
    "        cat \"$STATE/check.json\"\n"
    "        case $rc in\n"
    "        0) say \"GPU check ($LEVEL): passed\" ;;\n"
    "        3) say \"GPU check ($LEVEL): FAILED\" ;;\n"
    "        *) say \"GPU check ($LEVEL): could not run (status $rc)\" ;;\n"
    "        esac\n"
    "    fi\n"
    "else\n"
    "    say \"gpu-agent is not at $AGENT (set agent_install or agent_path in the site config)\"\n"
    "fi\n"
    "} 2>&1 | tee -a \"$LOG\"\n";

/* before the workloads: the agent's own check level (the node was checked above) */
static const char launch_head[] =
    "RUN_CHECK=quick\n"
    "[ \"$LEVEL\" = none ] && RUN_CHECK=none\n"
    "mkdir -p \"$STATE/logs\" \"$STATE/work\"\n";

struct buf {
    const struct orc_host_api *host;
    char *p;
    size_t len, cap;
    int rc;
};

static void put_raw(struct buf *b, const char *s)
{
    size_t n = strlen(s);

    if (b->rc == 0 && b->len + n < b->cap) {
        memcpy(b->p + b->len, s, n + 1);
        b->len += n;
    } else {
        b->rc = ORC_ELIMIT;
    }
}

static void put_quoted(struct buf *b, const char *value)
{
    if (b->rc == 0 && orc_ssh_quote(b->p, b->cap, &b->len, value ? value : "") < 0)
        b->rc = ORC_ELIMIT;
}

static void put_var(struct buf *b, const char *name, const char *value)
{
    put_raw(b, name);
    put_raw(b, "=");
    put_quoted(b, value);
    put_raw(b, "\n");
}

/* a space, then value as one shell word */
static void put_word(struct buf *b, const char *value)
{
    put_raw(b, " ");
    put_quoted(b, value);
}

/* --ready-http PORT:/PATH or --ready-tcp PORT, from the workload's port */
static void put_ready(struct buf *b, const json_t *w)
{
    json_int_t port = json_integer_value(json_object_get(w, "port"));
    const char *path = cld_jstr(w, "ready_path", NULL);
    char opt[300];

    if (port <= 0 || port > 65535)
        return;
    if (path && path[0] == '/')
        snprintf(opt, sizeof(opt), "%lld:%.256s", (long long)port, path);
    else
        snprintf(opt, sizeof(opt), "%lld", (long long)port);
    put_raw(b, path && path[0] == '/' ? " --ready-http" : " --ready-tcp");
    put_word(b, opt);
}

/* One workload: `nohup env -- K=V... "$AGENT" run --name ID --kind KIND ... -- ARGV &`.
 * The agent keeps its ORC_AGENT_* variables to itself; the workload gets the rest. */
static void put_workload(struct buf *b, const json_t *w)
{
    const char *id = cld_jstr(w, "id", "main"), *kind = cld_jstr(w, "kind", "service");
    const json_t *env = json_object_get(w, "env"), *argv = json_object_get(w, "argv"), *v;
    const char *k;
    size_t i;

    put_raw(b, "say \"starting workload \"");
    put_quoted(b, id);
    put_raw(b, "\" ($AGENT run)\" | tee -a \"$LOG\"\n");
    put_raw(b, "nohup env --");
    json_object_foreach((json_t *)env, k, v) {
        char *kv = cld_printf(b->host, "%s=%s", k, json_string_value(v) ? json_string_value(v) : "");
        if (kv == NULL) {
            b->rc = ORC_ENOMEM;
            return;
        }
        put_word(b, kv);
        b->host->free(kv);
    }
    put_raw(b, " \"$AGENT\" run --name");
    put_word(b, id);
    put_raw(b, " --kind");
    put_word(b, strcmp(kind, "job") == 0 ? "job" : "service");
    put_raw(b, " --check \"$RUN_CHECK\" --log-dir \"$STATE/logs\" --workdir \"$STATE/work\"");
    put_ready(b, w);
    put_raw(b, " --");
    json_array_foreach(argv, i, v)
        put_word(b, json_string_value(v));
    put_raw(b, " >> \"$STATE/logs/agent-\"");
    put_quoted(b, id);
    put_raw(b, "\".log\" 2>&1 < /dev/null &\n");
}

/* room for the workloads' part of the script */
static size_t workloads_room(const json_t *boot)
{
    return boot ? 4 * json_dumpb(boot, NULL, 0, JSON_COMPACT) + 512 * (1 + json_array_size(
                      json_object_get(boot, "workloads"))) + sizeof(launch_head)
                : 0;
}

static void put_workloads(struct buf *b, const json_t *boot)
{
    const json_t *wls = json_object_get(boot, "workloads"), *w;
    size_t i;

    if (json_array_size(wls) == 0)
        return;
    put_raw(b, launch_head);
    json_array_foreach(wls, i, w)
        put_workload(b, w);
}

char *ost_user_script(const struct ost *s, const struct oop *o)
{
    const struct ost_conf *c = &s->c;
    size_t cap = sizeof(script_body) + 1024 + 4 * (strlen(o->name) + strlen(o->deployment)) +
                 4 * (c->agent_install ? strlen(c->agent_install) : 0) +
                 4 * strlen(c->agent_path) + 4 * strlen(s->host->site ? s->host->site : "") +
                 4 * strlen(c->state_dir) +
                 4 * strlen(o->flavor_name) + 4 * strlen(o->gpu_model) + workloads_room(o->boot);
    struct buf b = {.host = s->host, .p = s->host->malloc(cap), .cap = cap};
    char gpus[16];

    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';
    snprintf(gpus, sizeof(gpus), "%u", o->flavor_gpus);
    put_raw(&b, "#!/bin/sh\n"
                "# Written by the orchestrator's openstack driver: installs gpu-agent when it\n"
                "# is missing, health-checks the GPUs (the verdict goes to the console)\n"
                "# and starts the node's workloads under gpu-agent.\n");
    put_var(&b, "ORC_NAME", o->name);
    put_var(&b, "ORC_DEPLOYMENT", o->deployment);
    put_var(&b, "ORC_SITE", s->host->site);
    put_var(&b, "ORC_FLAVOR", o->flavor_name);
    put_var(&b, "ORC_GPUS", gpus);
    put_var(&b, "ORC_GPU_MODEL", o->gpu_model);
    put_var(&b, "AGENT", c->agent_path);
    put_var(&b, "LEVEL", c->agent_check);
    put_var(&b, "INSTALL", c->agent_install);
    put_var(&b, "STATE", c->state_dir);
    put_raw(&b, script_body);
    put_workloads(&b, o->boot);
    if (b.rc < 0) {
        s->host->free(b.p);
        return NULL;
    }
    return b.p;
}

char *ost_base64(const struct orc_host_api *host, const char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *u = (const unsigned char *)in;
    char *out = host->malloc((n + 2) / 3 * 4 + 1), *p = out;
    size_t i = 0;

    if (out == NULL)
        return NULL;
    for (; i + 2 < n; i += 3) {
        *p++ = tab[u[i] >> 2];
        *p++ = tab[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
        *p++ = tab[((u[i + 1] & 15) << 2) | (u[i + 2] >> 6)];
        *p++ = tab[u[i + 2] & 63];
    }
    if (i < n) {
        *p++ = tab[u[i] >> 2];
        if (i + 1 < n) {
            *p++ = tab[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
            *p++ = tab[(u[i + 1] & 15) << 2];
        } else {
            *p++ = tab[(u[i] & 3) << 4];
            *p++ = '=';
        }
        *p++ = '=';
    }
    *p = '\0';
    return out;
}

char *ost_user_data(const struct ost *s, const struct oop *o)
{
    char *script = ost_user_script(s, o), *b64;

    if (script == NULL)
        return NULL;
    b64 = ost_base64(s->host, script, strlen(script));
    s->host->free(script);
    return b64;
}
