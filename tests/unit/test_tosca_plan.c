/*
 * The plan (tosca_plan): inputs bound and coerced, node instances from scalable
 * capabilities (default_instances, INDIGO's count and removal_list, bounds and the
 * instance limit), compute requirements normalised to bytes and Hz, node kinds, the
 * dependency order, hosts and host chains, lifecycle operations and artifacts merged
 * from the type chain and the template, outputs with deferred references, and the
 * plans of the examples; and what a template tells a deployer (tosca_template_describe). Templates
 * come from strings (tosca_load_buffer) except the examples; every refusal is checked by its code
 * and the line of the template.
 */
#include "tosca_fixture.h"

/* Loads with a limit on the plan's node instances. */
static void load_max_instances(ld_t *l, const char *src, size_t max)
{
    tosca_options_t o;

    tosca_options_init(&o);
    o.limits.max_instances = max;
    load_opts(l, "t.yaml", src, &o, false);
}

/* ---- inputs ------------------------------------------------------------------------ */

static const char inputs_src[] = V13 "topology_template:\n"
                                     "  inputs:\n"
                                     "    n:\n"
                                     "      type: integer\n"
                                     "      constraints:\n"
                                     "        - in_range: [1, 8]\n"
                                     "    m:\n"
                                     "      type: integer\n"
                                     "      default: 2\n"
                                     "    opt:\n"
                                     "      type: string\n"
                                     "      required: false\n"
                                     "    flag:\n"
                                     "      type: boolean\n"
                                     "      default: false\n"
                                     "    ratio:\n"
                                     "      type: float\n"
                                     "      default: 0.5\n"
                                     "    mem:\n"
                                     "      type: scalar-unit.size\n"
                                     "      default: 1 GB\n"
                                     "    names:\n"
                                     "      type: list\n"
                                     "      entry_schema: {type: string}\n"
                                     "      default: [a]\n"
                                     "  node_templates:\n"
                                     "    vm:\n"
                                     "      type: tosca.nodes.Compute\n"
                                     "      capabilities:\n"
                                     "        host:\n"
                                     "          properties:\n"
                                     "            num_cpus: { get_input: n }\n"
                                     "            mem_size: { get_input: mem }\n"
                                     "  outputs:\n"
                                     "    doubled: { value: { concat: [ { get_input: m }, x ] } }\n";

static void inputs_given_and_default(void **state)
{
    ld_t l;

    (void)state;
    load(&l, inputs_src);
    EXPECT_CLEAN(&l);
    plan_with(&l, "{\"n\": 4}");
    assert_int_equal(l.plan_rc, 0);
    assert_int_equal(l.d.count, 0);
    ASSERT_JEQ(l.plan, "inputs",
               "{\"n\": 4, \"m\": 2, \"opt\": null, \"flag\": false, \"ratio\": 0.5, "
               "\"mem\": \"1 GB\", \"names\": [\"a\"]}");
    ASSERT_JINT(plan_node(&l, "vm"), "compute.num_cpus", 4);
    ASSERT_JINT(plan_node(&l, "vm"), "compute.mem_size", 1000000000);
    ASSERT_JSTR(l.plan, "outputs.doubled.value", "2x");
    unload(&l);
    /* given values replace the defaults */
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": 8, \"m\": 7, \"opt\": \"o\", \"names\": [\"x\", \"y\"], "
                  "\"mem\": \"2 GiB\"}");
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JINT(l.plan, "inputs.m", 7);
    ASSERT_JSTR(l.plan, "inputs.opt", "o");
    ASSERT_JEQ(l.plan, "inputs.names", "[\"x\", \"y\"]");
    ASSERT_JINT(plan_node(&l, "vm"), "compute.mem_size", 2147483648);
    ASSERT_JSTR(l.plan, "outputs.doubled.value", "7x");
    unload(&l);
}

/* ---- what a template tells a deployer (tosca_template_describe) ---- */

static const char describe_src[] =
    "tosca_definitions_version: tosca_simple_yaml_1_3\n"
    "description: Train a model\n"
    "metadata:\n"
    "  display_name: Training\n"
    "  tag: training\n"
    "topology_template:\n"
    "  inputs:\n"
    "    gpus:\n"
    "      type: integer\n"
    "      description: GPUs\n"
    "      default: 1\n"
    "      constraints:\n"
    "        - in_range: [0, 8]\n"
    "    model:\n"
    "      type: string\n"
    "      constraints: [ { valid_values: [A100, H100] } ]\n"
    "    mem:\n"
    "      type: scalar-unit.size\n"
    "      default: 2 GB\n"
    "      constraints: [ { greater_or_equal: 1 GB } ]\n"
    "    names:\n"
    "      type: list\n"
    "      entry_schema: { type: string }\n"
    "      default: [a]\n"
    "      constraints: [ { min_length: 1 } ]\n"
    "    hub_token:\n"
    "      type: string\n"
    "      default: s3cr3t\n"
    "    ratio:\n"
    "      type: float\n"
    "      required: false\n"
    "      constraints: [ { greater_than: 0 }, { less_or_equal: 1.5 } ]\n"
    "  node_templates:\n"
    "    vm:\n"
    "      type: tosca.nodes.Compute\n";

static void describe_inputs(void **state)
{
    ld_t l;
    json_t *d = NULL;

    (void)state;
    load(&l, describe_src);
    EXPECT_CLEAN(&l);
    assert_int_equal(tosca_template_describe(l.t, &d), 0);
    ASSERT_JSTR(d, "tosca_definitions_version", "tosca_simple_yaml_1_3");
    ASSERT_JSTR(d, "description", "Train a model");
    ASSERT_JEQ(d, "metadata", "{\"display_name\": \"Training\", \"tag\": \"training\"}");
    /* as written, in the template's order */
    ASSERT_JEQ(d, "inputs.0",
               "{\"name\": \"gpus\", \"type\": \"integer\", \"description\": \"GPUs\", "
               "\"required\": false, \"secret\": false, \"default\": 1, "
               "\"constraints\": [{\"in_range\": [0, 8]}]}");
    ASSERT_JEQ(d, "inputs.1.required", "true");
    ASSERT_JSTR(d, "inputs.3.entry_schema", "string");
    ASSERT_JEQ(d, "inputs.4.secret", "true");
    assert_null(jpath(d, "inputs.4.default")); /* a secret's default is not shown */
    ASSERT_JEQ(d, "inputs.5.required", "false");
    /* as a JSON Schema */
    ASSERT_JEQ(d, "schema.required", "[\"model\"]");
    ASSERT_JEQ(
        d, "schema.properties.gpus",
        "{\"type\": \"integer\", \"description\": \"GPUs\", \"default\": 1, "
        "\"minimum\": 0, \"maximum\": 8, \"x-tosca-constraints\": [{\"in_range\": [0, 8]}]}");
    ASSERT_JEQ(d, "schema.properties.model.enum", "[\"A100\", \"H100\"]");
    ASSERT_JSTR(d, "schema.properties.mem.type", "string");
    ASSERT_JSTR(d, "schema.properties.mem.x-tosca-type", "scalar-unit.size");
    ASSERT_JSTR(d, "schema.properties.mem.default", "2 GB");
    assert_null(jpath(d, "schema.properties.mem.minimum")); /* "1 GB" is no JSON number */
    ASSERT_JEQ(d, "schema.properties.mem.x-tosca-constraints",
               "[{\"greater_or_equal\": \"1 GB\"}]");
    ASSERT_JEQ(d, "schema.properties.names.items", "{\"type\": \"string\"}");
    ASSERT_JINT(d, "schema.properties.names.minItems", 1);
    ASSERT_JEQ(d, "schema.properties.hub_token.writeOnly", "true");
    ASSERT_JSTR(d, "schema.properties.hub_token.format", "password");
    ASSERT_JINT(d, "schema.properties.ratio.exclusiveMinimum", 0);
    ASSERT_JEQ(d, "schema.properties.ratio.maximum", "1.5");
    json_decref(d);
    unload(&l);
}

/* A template without description, metadata or inputs says so plainly. */
static void describe_bare(void **state)
{
    ld_t l;
    json_t *d = NULL;

    (void)state;
    load(&l, "tosca_definitions_version: tosca_simple_yaml_1_3\n"
             "topology_template:\n"
             "  node_templates:\n"
             "    vm: { type: tosca.nodes.Compute }\n");
    EXPECT_CLEAN(&l);
    assert_int_equal(tosca_template_describe(l.t, &d), 0);
    ASSERT_JEQ(d, "description", "null");
    ASSERT_JEQ(d, "metadata", "{}");
    ASSERT_JEQ(d, "inputs", "[]");
    ASSERT_JEQ(d, "schema", "{\"type\": \"object\", \"properties\": {}, \"required\": []}");
    json_decref(d);
    unload(&l);
}

static void inputs_missing_required(void **state)
{
    ld_t l;

    (void)state;
    load(&l, inputs_src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "missing-input", line_of(inputs_src, "    n:"), "'n'");
    assert_int_equal(l.d.errors, 1);
    unload(&l);
    load(&l, inputs_src);
    plan_with(&l, "{}");
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "missing-input", line_of(inputs_src, "    n:"), "'n'");
    unload(&l);
}

static void inputs_unknown_given(void **state)
{
    ld_t l;

    (void)state;
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": 1, \"colour\": \"red\"}");
    assert_int_equal(l.plan_rc, 0);
    /* about the caller's inputs, not a line of the template: the file only */
    assert_string_equal(EXPECT_WARN(&l, "unknown-input", 0, "'colour'")->file, "t.yaml");
    assert_int_equal(count_code(&l.d, "unknown-input"), 1);
    assert_int_equal(l.d.count, 1);
    assert_null(json_object_get(json_object_get(l.plan, "inputs"), "colour"));
    unload(&l);
}

/* Values from the command line come as strings: read as the input's type. */
static void inputs_coercion(void **state)
{
    ld_t l;

    (void)state;
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": \"4\", \"flag\": \"true\", \"ratio\": \"2.5\", \"mem\": \"3 GB\", "
                  "\"m\": \"0x10\"}");
    assert_int_equal(l.plan_rc, 0);
    assert_int_equal(l.d.count, 0);
    ASSERT_JINT(l.plan, "inputs.n", 4);
    ASSERT_JEQ(l.plan, "inputs.flag", "true");
    ASSERT_JEQ(l.plan, "inputs.ratio", "2.5");
    ASSERT_JSTR(l.plan, "inputs.mem", "3 GB");
    ASSERT_JINT(l.plan, "inputs.m", 16);
    ASSERT_JINT(plan_node(&l, "vm"), "compute.num_cpus", 4);
    ASSERT_JINT(plan_node(&l, "vm"), "compute.mem_size", 3000000000);
    unload(&l);
}

static void inputs_bad_value(void **state)
{
    ld_t l;
    unsigned at = line_of(inputs_src, "    n:");

    (void)state;
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": \"abc\"}");
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "type-mismatch", at, "abc");
    unload(&l);
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": 2, \"flag\": 3, \"names\": [1, [2]], \"mem\": \"lots\"}");
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "type-mismatch", line_of(inputs_src, "    flag:"), "flag");
    EXPECT_ERR(&l, "type-mismatch", line_of(inputs_src, "    names:"), "entry 1");
    EXPECT_ERR(&l, "type-mismatch", line_of(inputs_src, "    mem:"), "lots");
    unload(&l);
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": \"\"}");
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "type-mismatch", at, "empty");
    unload(&l);
}

static void inputs_constraint(void **state)
{
    ld_t l;

    (void)state;
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": 9}");
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "constraint-violated", line_of(inputs_src, "    n:"), "in_range");
    unload(&l);
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": \"0\"}");
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "constraint-violated", line_of(inputs_src, "    n:"), "in_range");
    unload(&l);
    load(&l, inputs_src);
    plan_with(&l, "{\"n\": 1}");
    assert_int_equal(l.plan_rc, 0);
    unload(&l);
}

/* A default that is not a value of the input's type cannot be deployed as it
 * stands: an error in both modes (a boolean default for a string input, as
 * real templates have, is only a defect: see test_tosca.c). */
static void input_default_mismatch_is_error(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  inputs:\n"
                                  "    n:\n"
                                  "      type: integer\n"
                                  "      default: abc\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "default: abc"), "abc");
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "type-mismatch", line_of(src, "default: abc"), "abc");
    unload(&l);
}

/* ---- instances ----------------------------------------------------------------------- */

static const char indigo_types[] = V13 "capability_types:\n"
                                       "  my.Scalable:\n"
                                       "    derived_from: tosca.capabilities.Scalable\n"
                                       "    properties:\n"
                                       "      count: {type: integer, required: false}\n"
                                       "      removal_list:\n"
                                       "        type: list\n"
                                       "        required: false\n"
                                       "        entry_schema: {type: string}\n"
                                       "node_types:\n"
                                       "  my.WorkerNode:\n"
                                       "    derived_from: tosca.nodes.Compute\n"
                                       "    capabilities:\n"
                                       "      scalable:\n"
                                       "        type: my.Scalable\n";

static void instances_default_instances(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    one:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    wn:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        scalable:\n"
                                  "          properties:\n"
                                  "            min_instances: 1\n"
                                  "            max_instances: 5\n"
                                  "            default_instances: 3\n";
    ld_t l;
    json_t *n;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "wn");
    ASSERT_JINT(n, "count", 3);
    ASSERT_JEQ(n, "instances",
               "[{\"index\": 0, \"name\": \"wn[0]\"}, {\"index\": 1, \"name\": \"wn[1]\"}, "
               "{\"index\": 2, \"name\": \"wn[2]\"}]");
    ASSERT_JEQ(n, "removal_list", "[]");
    ASSERT_JINT(plan_node(&l, "one"), "count", 1);
    ASSERT_JEQ(plan_node(&l, "one"), "instances", "[{\"index\": 0, \"name\": \"one[0]\"}]");
    unload(&l);
}

/* INDIGO's scalable capability: count (wins over default_instances) and removal_list. */
static void instances_indigo_count(void **state)
{
    char src[2048];
    ld_t l;
    json_t *n;

    (void)state;
    snprintf(src, sizeof(src),
             "%stopology_template:\n"
             "  inputs:\n"
             "    workers: {type: integer, default: 2}\n"
             "  node_templates:\n"
             "    wn:\n"
             "      type: my.WorkerNode\n"
             "      capabilities:\n"
             "        scalable:\n"
             "          properties:\n"
             "            count: { get_input: workers }\n"
             "            default_instances: 1\n"
             "            max_instances: 10\n"
             "            removal_list: [\"wn[0]\"]\n",
             indigo_types);
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, "{\"workers\": 4}");
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "wn");
    ASSERT_JINT(n, "count", 4);
    ASSERT_JSTR(n, "instances.3.name", "wn[3]");
    ASSERT_JEQ(n, "removal_list", "[\"wn[0]\"]");
    ASSERT_JSTR(n, "kind", "COMPUTE");
    unload(&l);
    /* count 0: no instances (a defect: below min_instances 1) */
    load(&l, src);
    plan_with(&l, "{\"workers\": 0}");
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JINT(plan_node(&l, "wn"), "count", 0);
    ASSERT_JEQ(plan_node(&l, "wn"), "instances", "[]");
    EXPECT_WARN(&l, "bad-count", line_of(src, "    wn:"), "min_instances");
    unload(&l);
}

static void instances_out_of_bounds(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    wn:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        scalable:\n"
                                  "          properties:\n"
                                  "            min_instances: 2\n"
                                  "            max_instances: 4\n"
                                  "            default_instances: 6\n";
    static const char neg[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    wn:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        scalable:\n"
                                  "          properties:\n"
                                  "            default_instances: -1\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    EXPECT_WARN(&l, "bad-count", line_of(src, "    wn:"), "max_instances 4");
    ASSERT_JINT(plan_node(&l, "wn"), "count", 6); /* asked for: the engine decides */
    unload(&l);
    load_mode(&l, src, true);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "bad-count", line_of(src, "    wn:"), "6 instances");
    unload(&l);
    load(&l, neg);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "bad-count", line_of(neg, "    wn:"), "-1");
    unload(&l);
}

static void instances_limit(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  node_templates:\n"
                                  "    a:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        scalable:\n"
                                  "          properties: {max_instances: 10, default_instances: 3}\n"
                                  "    b:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        scalable:\n"
                                  "          properties: {max_instances: 10, default_instances: 3}\n";
    ld_t l;

    (void)state;
    load_max_instances(&l, src, 6);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    unload(&l);
    load_max_instances(&l, src, 5);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, ORC_ETOSCA);
    EXPECT_ERR(&l, "too-many-instances", line_of(src, "    b:"), "5 node instances");
    unload(&l);
}

/* ---- compute requirements and node kinds ---------------------------------------- */

static void compute_requirements(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  inputs:\n"
                                  "    model: {type: string, default: A100}\n"
                                  "  node_templates:\n"
                                  "    gpu:\n"
                                  "      type: orc.nodes.GPUCompute\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            num_cpus: 8\n"
                                  "            mem_size: 2 GB\n"
                                  "            disk_size: 4 GiB\n"
                                  "            cpu_frequency: 2.5 GHz\n"
                                  "            num_gpus: 2\n"
                                  "            gpu_vendor: nvidia\n"
                                  "            gpu_model: { get_input: model }\n"
                                  "        os:\n"
                                  "          properties:\n"
                                  "            type: linux\n"
                                  "    cpu:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "      capabilities:\n"
                                  "        host:\n"
                                  "          properties:\n"
                                  "            mem_size: 4 GiB\n";
    ld_t l;
    json_t *g, *c;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, "{\"model\": \"H100\"}");
    assert_int_equal(l.plan_rc, 0);
    g = plan_node(&l, "gpu");
    ASSERT_JINT(g, "compute.num_cpus", 8);
    ASSERT_JINT(g, "compute.mem_size", 2000000000);
    ASSERT_JINT(g, "compute.disk_size", 4294967296);
    ASSERT_JINT(g, "compute.cpu_frequency", 2500000000);
    ASSERT_JINT(g, "compute.num_gpus", 2);
    ASSERT_JSTR(g, "compute.gpu_vendor", "nvidia");
    ASSERT_JSTR(g, "compute.gpu_model", "H100");
    ASSERT_JSTR(g, "compute.os.type", "linux");
    /* the template's own values stay as written in the capabilities */
    ASSERT_JSTR(g, "capabilities.host.properties.mem_size", "2 GB");
    c = plan_node(&l, "cpu");
    ASSERT_JINT(c, "compute.mem_size", 4294967296);
    ASSERT_JINT(c, "compute.num_gpus", 0); /* none asked for */
    ASSERT_JEQ(c, "compute.num_cpus", "null");
    ASSERT_JEQ(c, "compute.gpu_model", "null");
    unload(&l);
}

/* Sizes and frequencies in every spelling 1.x allows, normalised to bytes and Hz. */
static void compute_units(void **state)
{
    static const struct {
        const char *mem, *freq;
        json_int_t bytes, hz;
    } cases[] = {
        {"2 gb", "2.4 ghz", 2000000000, 2400000000},
        {"1.5 GiB", "800 MHz", 1610612736, 800000000},
        {"512 MiB", "1 GHz", 536870912, 1000000000},
        {"2GB", "300000 kHz", 2000000000, 300000000},
        {"0.5 TB", "0.1 GHz", 500000000000, 100000000},
        {"1 kB", "1 GHz", 1000, 1000000000},
        {"1 B", "1 GHz", 1, 1000000000},
    };
    char src[1024];
    ld_t l;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(src, sizeof(src),
                 V13 "topology_template:\n"
                     "  node_templates:\n"
                     "    vm:\n"
                     "      type: tosca.nodes.Compute\n"
                     "      capabilities:\n"
                     "        host:\n"
                     "          properties:\n"
                     "            mem_size: %s\n"
                     "            cpu_frequency: %s\n",
                 cases[i].mem, cases[i].freq);
        load(&l, src);
        EXPECT_CLEAN(&l);
        plan_with(&l, NULL);
        assert_int_equal(l.plan_rc, 0);
        ASSERT_JINT(plan_node(&l, "vm"), "compute.mem_size", cases[i].bytes);
        ASSERT_JINT(plan_node(&l, "vm"), "compute.cpu_frequency", cases[i].hz);
        unload(&l);
    }
}

static void node_kinds(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.Trainer:\n"
                                  "    derived_from: orc.nodes.Job\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    job:\n"
                                  "      type: orc.nodes.Job\n"
                                  "      requirements: [{host: vm}]\n"
                                  "    trainer:\n"
                                  "      type: my.Trainer\n"
                                  "      requirements: [{host: vm}]\n"
                                  "    svc:\n"
                                  "      type: orc.nodes.Service\n"
                                  "      requirements: [{host: vm}]\n"
                                  "    sw:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements: [{host: vm}]\n"
                                  "    net:\n"
                                  "      type: tosca.nodes.network.Network\n"
                                  "    disk:\n"
                                  "      type: tosca.nodes.Storage.BlockStorage\n"
                                  "      properties: {name: vol}\n"
                                  "    root:\n"
                                  "      type: tosca.nodes.Root\n";
    static const char *const kinds[][2] = {
        {"vm", "COMPUTE"},    {"job", "JOB"},      {"trainer", "JOB"},     {"svc", "SERVICE"},
        {"sw", "SOFTWARE"},   {"net", "NETWORK"},  {"disk", "STORAGE"},    {"root", "SOFTWARE"},
    };
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        ASSERT_JSTR(plan_node(&l, kinds[i][0]), "kind", kinds[i][1]);
    /* only compute nodes carry compute requirements */
    assert_non_null(json_object_get(plan_node(&l, "vm"), "compute"));
    assert_null(json_object_get(plan_node(&l, "job"), "compute"));
    ASSERT_JEQ(plan_node(&l, "svc"), "properties.port", "5000");
    unload(&l);
}

/* ---- order, hosts --------------------------------------------------------------------- */

static const char order_src[] = V13 "topology_template:\n"
                                    "  node_templates:\n"
                                    "    web:\n"
                                    "      type: tosca.nodes.SoftwareComponent\n"
                                    "      requirements:\n"
                                    "        - host: vm\n"
                                    "        - dependency: db\n"
                                    "    db:\n"
                                    "      type: tosca.nodes.SoftwareComponent\n"
                                    "      requirements:\n"
                                    "        - host: vm\n"
                                    "    lonely:\n"
                                    "      type: tosca.nodes.Root\n"
                                    "    vm:\n"
                                    "      type: tosca.nodes.Compute\n"
                                    "    cache:\n"
                                    "      type: tosca.nodes.SoftwareComponent\n"
                                    "      requirements:\n"
                                    "        - host: vm\n";

static void order_targets_first(void **state)
{
    ld_t l, again;

    (void)state;
    load(&l, order_src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    /* Kahn's algorithm, stable in template order */
    ASSERT_JEQ(l.plan, "order", "[\"lonely\", \"vm\", \"db\", \"cache\", \"web\"]");
    ASSERT_JSTR(l.plan, "nodes.0.name", "lonely"); /* nodes are listed in that order */
    ASSERT_JSTR(l.plan, "nodes.4.name", "web");
    ASSERT_JEQ(plan_node(&l, "web"), "depends_on", "[\"vm\", \"db\"]");
    /* deterministic: the same plan again, also from a fresh load */
    {
        json_t *p2 = NULL;
        assert_int_equal(tosca_plan(l.t, NULL, &p2, &l.d), 0);
        assert_true(json_equal(l.plan, p2));
        json_decref(p2);
    }
    load(&again, order_src);
    plan_with(&again, NULL);
    assert_true(json_equal(l.plan, again.plan));
    unload(&again);
    unload(&l);
}

static void host_chain(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.Runtime:\n"
                                  "    derived_from: tosca.nodes.SoftwareComponent\n"
                                  "    capabilities:\n"
                                  "      host: tosca.capabilities.Compute\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.SoftwareComponent\n"
                                  "      requirements:\n"
                                  "        - dependency: other\n"
                                  "        - host: runtime\n"
                                  "    runtime:\n"
                                  "      type: my.Runtime\n"
                                  "      requirements:\n"
                                  "        - host: vm\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    other:\n"
                                  "      type: tosca.nodes.Root\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "app"), "host", "runtime");
    ASSERT_JEQ(plan_node(&l, "app"), "host_chain", "[\"runtime\", \"vm\"]");
    ASSERT_JEQ(plan_node(&l, "app"), "depends_on", "[\"other\", \"runtime\"]");
    ASSERT_JSTR(plan_node(&l, "runtime"), "host", "vm");
    ASSERT_JEQ(plan_node(&l, "runtime"), "host_chain", "[\"vm\"]");
    ASSERT_JEQ(plan_node(&l, "vm"), "host", "null");
    ASSERT_JEQ(plan_node(&l, "vm"), "host_chain", "[]");
    ASSERT_JEQ(plan_node(&l, "other"), "host", "null");
    ASSERT_JEQ(l.plan, "order", "[\"vm\", \"other\", \"runtime\", \"app\"]");
    unload(&l);
}

/* ---- operations, artifacts -------------------------------------------------------- */

static const char ops_src[] = V13 "node_types:\n"
                                  "  my.Base:\n"
                                  "    derived_from: tosca.nodes.SoftwareComponent\n"
                                  "    interfaces:\n"
                                  "      Standard:\n"
                                  "        create:\n"
                                  "          implementation: base-create.sh\n"
                                  "          inputs:\n"
                                  "            a: 1\n"
                                  "            b: 2\n"
                                  "        stop: base-stop.sh\n"
                                  "  my.App:\n"
                                  "    derived_from: my.Base\n"
                                  "    interfaces:\n"
                                  "      Standard:\n"
                                  "        start: app-start.sh\n"
                                  "        stop: app-stop.sh\n"
                                  "    artifacts:\n"
                                  "      image:\n"
                                  "        type: tosca.artifacts.Deployment.Image.VM\n"
                                  "        file: base.qcow2\n"
                                  "      config:\n"
                                  "        type: tosca.artifacts.File\n"
                                  "        file: type.conf\n"
                                  "topology_template:\n"
                                  "  inputs:\n"
                                  "    level: {type: integer, default: 9}\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    app:\n"
                                  "      type: my.App\n"
                                  "      requirements:\n"
                                  "        - host: vm\n"
                                  "      interfaces:\n"
                                  "        Standard:\n"
                                  "          create:\n"
                                  "            inputs:\n"
                                  "              b: 3\n"
                                  "              c: { get_input: level }\n"
                                  "          start:\n"
                                  "            implementation:\n"
                                  "              primary: tpl-start.sh\n"
                                  "              dependencies: [lib.sh]\n"
                                  "      artifacts:\n"
                                  "        config:\n"
                                  "          type: tosca.artifacts.File\n"
                                  "          file: template.conf\n"
                                  "        extra: extra.sh\n";

/* Operations: the type chain from the root down, then the template (which wins; inputs
 * are merged). */
static void operations_merged(void **state)
{
    ld_t l;
    json_t *n;

    (void)state;
    load(&l, ops_src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "app");
    ASSERT_JSTR(n, "interfaces.Standard.create.implementation.primary", "base-create.sh");
    ASSERT_JEQ(n, "interfaces.Standard.create.inputs", "{\"a\": 1, \"b\": 3, \"c\": 9}");
    ASSERT_JEQ(n, "interfaces.Standard.start.implementation",
               "{\"primary\": \"tpl-start.sh\", \"dependencies\": [\"lib.sh\"]}");
    ASSERT_JSTR(n, "interfaces.Standard.stop.implementation.primary", "app-stop.sh");
    assert_null(jpath(n, "interfaces.Standard.configure")); /* no implementation anywhere */
    ASSERT_JEQ(plan_node(&l, "vm"), "interfaces", "{}");
    unload(&l);
}

static void artifacts_merged(void **state)
{
    ld_t l;
    json_t *n;

    (void)state;
    load(&l, ops_src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    n = plan_node(&l, "app");
    ASSERT_JSTR(n, "artifacts.image.file", "base.qcow2");
    ASSERT_JSTR(n, "artifacts.image.type", "tosca.artifacts.Deployment.Image.VM");
    ASSERT_JSTR(n, "artifacts.config.file", "template.conf"); /* the template wins */
    ASSERT_JSTR(n, "artifacts.extra.file", "extra.sh");
    unload(&l);
}

/* Regression: a node type's artifact in short form (`script: install.sh`) appears in the plan as
 * a bare string, while the same short form in a node template becomes {"file": ...}
 * (plan.c, node_artifacts evaluates the type's definition as written). Consumers that
 * read artifacts.<name>.file miss it. */
static void type_artifact_short_form(void **state)
{
    static const char src[] = V13 "node_types:\n"
                                  "  my.App:\n"
                                  "    derived_from: tosca.nodes.Root\n"
                                  "    artifacts:\n"
                                  "      script: install.sh\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: my.App\n"
                                  "      artifacts:\n"
                                  "        other: other.sh\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "app"), "artifacts.other.file", "other.sh");
    ASSERT_JSTR(plan_node(&l, "app"), "artifacts.script.file", "install.sh");
    unload(&l);
}

/* Regression: a requirement that names a relationship template gets that template's type in the
 * plan, but neither the template's name nor its properties: the engine cannot see
 * `weight: 10` below, while the same property written inline in the requirement does
 * reach the plan (requirements.N.properties). */
static void relationship_template_properties(void **state)
{
    static const char src[] = V13 "relationship_types:\n"
                                  "  my.Uses:\n"
                                  "    derived_from: tosca.relationships.DependsOn\n"
                                  "    properties:\n"
                                  "      weight: {type: integer, required: false}\n"
                                  "topology_template:\n"
                                  "  relationship_templates:\n"
                                  "    heavy:\n"
                                  "      type: my.Uses\n"
                                  "      properties:\n"
                                  "        weight: 10\n"
                                  "  node_templates:\n"
                                  "    db:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "    app:\n"
                                  "      type: tosca.nodes.Root\n"
                                  "      requirements:\n"
                                  "        - dependency:\n"
                                  "            node: db\n"
                                  "            relationship:\n"
                                  "              type: my.Uses\n"
                                  "              properties: {weight: 1}\n"
                                  "        - dependency:\n"
                                  "            node: db\n"
                                  "            relationship: heavy\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JINT(plan_node(&l, "app"), "requirements.0.properties.weight", 1);
    ASSERT_JSTR(plan_node(&l, "app"), "requirements.1.relationship", "my.Uses");
    ASSERT_JINT(plan_node(&l, "app"), "requirements.1.properties.weight", 10);
    unload(&l);
}

/* ---- outputs -------------------------------------------------------------------------- */

static void outputs_deferred(void **state)
{
    static const char src[] = V13 "topology_template:\n"
                                  "  inputs:\n"
                                  "    port: {type: integer, default: 80}\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "  outputs:\n"
                                  "    static_port:\n"
                                  "      value: { get_input: port }\n"
                                  "    literal:\n"
                                  "      value: [1, 2]\n"
                                  "    ip:\n"
                                  "      value: { get_attribute: [ vm, public_address ] }\n"
                                  "    url:\n"
                                  "      value: { concat: [ \"http://\", "
                                  "{ get_attribute: [ vm, public_address ] }, \":\", "
                                  "{ get_input: port } ] }\n"
                                  "    result:\n"
                                  "      value: { get_operation_output: [ vm, Standard, create, id ] }\n";
    ld_t l;

    (void)state;
    load(&l, src);
    EXPECT_CLEAN(&l);
    plan_with(&l, "{\"port\": 8080}");
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JEQ(l.plan, "outputs.static_port", "{\"value\": 8080, \"deferred\": false}");
    ASSERT_JEQ(l.plan, "outputs.literal", "{\"value\": [1, 2], \"deferred\": false}");
    ASSERT_JEQ(l.plan, "outputs.ip",
               "{\"value\": {\"get_attribute\": [\"vm\", \"public_address\"]}, "
               "\"deferred\": true}");
    /* the static parts are computed, the run-time one kept */
    ASSERT_JEQ(l.plan, "outputs.url",
               "{\"value\": {\"concat\": [\"http://\", {\"get_attribute\": [\"vm\", "
               "\"public_address\"]}, \":\", 8080]}, \"deferred\": true}");
    ASSERT_JEQ(l.plan, "outputs.result.deferred", "true");
    unload(&l);
}

/* ---- the examples ----------------------------------------------------------------- */

static void example_gpu_training(void **state)
{
    ld_t l;
    json_t *n;

    (void)state;
    load_path(&l, "examples/gpu-training.yaml", NULL);
    EXPECT_CLEAN(&l);
    plan_with(&l, "{\"num_gpus\": 0}");
    assert_int_equal(l.plan_rc, 0);
    assert_int_equal(l.d.count, 0);
    ASSERT_JSTR(l.plan, "tosca_definitions_version", "tosca_simple_yaml_1_3");
    ASSERT_JEQ(l.plan, "order", "[\"train_node\", \"training\"]");
    n = plan_node(&l, "train_node");
    ASSERT_JSTR(n, "kind", "COMPUTE");
    ASSERT_JINT(n, "compute.num_gpus", 0);
    ASSERT_JINT(n, "compute.num_cpus", 1);
    ASSERT_JINT(n, "compute.mem_size", 2000000000);
    ASSERT_JSTR(n, "compute.gpu_model", "");
    ASSERT_JINT(n, "count", 1);
    n = plan_node(&l, "training");
    ASSERT_JSTR(n, "kind", "JOB");
    ASSERT_JSTR(n, "host", "train_node");
    ASSERT_JINT(n, "properties.environment.EPOCHS", 3);
    ASSERT_JINT(n, "properties.max_retries", 0);
    ASSERT_JEQ(l.plan, "outputs.exit_status",
               "{\"value\": {\"get_attribute\": [\"training\", \"exit_status\"]}, "
               "\"deferred\": true}");
    unload(&l);
}

static void example_gpu_serving(void **state)
{
    ld_t l;
    json_t *n;

    (void)state;
    load_path(&l, "examples/gpu-serving.yaml", NULL);
    EXPECT_CLEAN(&l);
    plan_with(&l, "{\"num_gpus\": 0}");
    assert_int_equal(l.plan_rc, 0);
    assert_int_equal(l.d.count, 0);
    n = plan_node(&l, "serve_node");
    ASSERT_JSTR(n, "kind", "COMPUTE");
    ASSERT_JINT(n, "compute.num_gpus", 0);
    ASSERT_JINT(n, "compute.mem_size", 1000000000);
    n = plan_node(&l, "model_api");
    ASSERT_JSTR(n, "kind", "SERVICE");
    ASSERT_JINT(n, "properties.port", 5000);
    ASSERT_JSTR(n, "properties.readiness_path", "/v2/models/");
    ASSERT_JEQ(n, "host_chain", "[\"serve_node\"]");
    ASSERT_JEQ(l.plan, "outputs.endpoint.deferred", "true");
    ASSERT_JEQ(l.plan, "outputs.endpoint.value.concat.3", "5000");
    unload(&l);
    /* an input outside its constraint is refused at plan time, at the input's line */
    {
        static char text[8192];
        FILE *fp = fopen("examples/gpu-serving.yaml", "r");
        assert_non_null(fp);
        text[fread(text, 1, sizeof(text) - 1, fp)] = '\0';
        fclose(fp);
        load_path(&l, "examples/gpu-serving.yaml", NULL);
        plan_with(&l, "{\"num_gpus\": 9}");
        assert_int_equal(l.plan_rc, ORC_ETOSCA);
        EXPECT_ERR(&l, "constraint-violated", line_of(text, "    num_gpus:"), "in_range");
        unload(&l);
    }
}

static void plan_bad_arguments(void **state)
{
    ld_t l;
    json_t *plan = NULL, *arr = json_array();

    (void)state;
    load(&l, inputs_src);
    assert_int_equal(tosca_plan(l.t, arr, &plan, &l.d), ORC_EINVAL);
    assert_null(plan);
    assert_int_equal(tosca_plan(l.t, NULL, NULL, &l.d), ORC_EINVAL);
    assert_int_equal(tosca_plan(l.t, NULL, &plan, NULL), ORC_EINVAL);
    json_decref(arr);
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(inputs_given_and_default),
        cmocka_unit_test(inputs_missing_required),
        cmocka_unit_test(inputs_unknown_given),
        cmocka_unit_test(describe_inputs),
        cmocka_unit_test(describe_bare),
        cmocka_unit_test(inputs_coercion),
        cmocka_unit_test(inputs_bad_value),
        cmocka_unit_test(inputs_constraint),
        cmocka_unit_test(instances_default_instances),
        cmocka_unit_test(instances_indigo_count),
        cmocka_unit_test(instances_out_of_bounds),
        cmocka_unit_test(instances_limit),
        cmocka_unit_test(compute_requirements),
        cmocka_unit_test(compute_units),
        cmocka_unit_test(node_kinds),
        cmocka_unit_test(order_targets_first),
        cmocka_unit_test(host_chain),
        cmocka_unit_test(operations_merged),
        cmocka_unit_test(artifacts_merged),
        cmocka_unit_test(outputs_deferred),
        cmocka_unit_test(example_gpu_training),
        cmocka_unit_test(example_gpu_serving),
        cmocka_unit_test(plan_bad_arguments),
        cmocka_unit_test(input_default_mismatch_is_error),
        cmocka_unit_test(type_artifact_short_form),
        cmocka_unit_test(relationship_template_properties),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
