// The web dashboard in a real browser (docs/ui.md): headless Chromium driven by
// playwright-core against a running orchestratord (tests/ui/run.sh starts it on the local
// site). A user opens the catalog, searches it, opens the serving template's deploy form,
// is told of an input out of range before anything is sent, deploys, watches the
// deployment reach CREATE_COMPLETE on its page (live, from the event stream), opens the
// endpoint of its outputs, sees it in the list and the local site on the sites page, keeps
// the list open while another deployment appears, completes and goes (live, from the
// deployments feed), deletes the first and sees it gone. Each page is saved as a screenshot.
//
//   node tests/ui/dashboard.mjs URL SCREENSHOT_DIR CHROMIUM
//
// Prints cmocka-like result lines, which tests/run.sh counts.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import path from "node:path";

const [url, shots, chromiumPath] = process.argv.slice(2);
const require = createRequire(process.env.PLAYWRIGHT_DIR + "/");
const { chromium } = require("playwright-core");

const results = [];
let page;

async function step(name, fn) {
  process.stdout.write(`[ RUN      ] ${name}\n`);
  try {
    await fn();
    results.push([name, true]);
    process.stdout.write(`[       OK ] ${name}\n`);
  } catch (e) {
    results.push([name, false]);
    process.stdout.write(`[  FAILED  ] ${name}: ${e.message}\n`);
    await shot("failed-" + name).catch(() => {});
    process.stdout.write("page: " + (await page.textContent("main").catch(() => "?")) + "\n");
    throw e;
  }
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

async function shot(name) {
  await page.screenshot({ path: path.join(shots, name + ".png"), fullPage: true });
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  /* a script's errors; the browser's "Failed to load resource" lines are the expected 404s
   * of a deployment once deleted (its page reads it until it is gone) */
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      problems.push("console: " + m.text());
    }
  });
  let uuid, endpoint;
  try {
    await step("catalog_lists_and_searches", async () => {
      await page.goto(url + "/ui/");
      await page.waitForSelector("article[data-template=gpu-serving]");
      const names = await page.$$eval("article[data-template]", (a) => a.map((e) => e.dataset.template));
      expect(names.join(",") === "gpu-serving,gpu-train-serve,gpu-training", "catalog: " + names);
      await shot("catalog");
      await page.fill("#catalog-q", "serving");
      await page.press("#catalog-q", "Enter");
      await page.waitForFunction(() => document.querySelectorAll("article[data-template]").length === 1);
      expect(await page.isVisible("article[data-template=gpu-serving]"), "search keeps gpu-serving");
    });
    await step("deploy_form_checks_and_deploys", async () => {
      await page.click("article[data-template=gpu-serving] >> text=Deploy");
      await page.waitForSelector("#deploy-form");
      expect(await page.inputValue("#in-port") === "5000", "port defaults to 5000");
      expect(await page.getAttribute("#in-port", "max") === "65535", "port's maximum from the schema");
      await page.fill("#in-port", "80");
      await page.click("#deploy-submit");
      await page.waitForSelector("#err-port:has-text('must be at least 1024')");
      await shot("deploy-form");
      const port = 20000 + (process.pid % 12000);
      await page.fill("#in-port", String(port));
      await page.fill("#in-command", "mkdir -p v2/models && exec python3 -m http.server $PORT --bind 127.0.0.1");
      await page.click("#deploy-submit");
      await page.waitForURL(/#\/deployments\/[0-9a-f-]{36}$/);
      uuid = page.url().split("/").pop();
      expect((await page.textContent("#notice")).includes(uuid), "the notice names the deployment");
    });
    await step("deployment_page_goes_live_to_complete", async () => {
      await page.waitForSelector("#details [data-status=CREATE_COMPLETE]", { timeout: 60000 });
      await page.waitForSelector("#history tr[data-type='deployment.status']");
      await page.waitForSelector("#outputs a");
      endpoint = await page.getAttribute("#outputs a", "href");
      expect(/^http:\/\/127\.0\.0\.1:\d+\/v2\/models\/$/.test(endpoint), "endpoint " + endpoint);
      expect((await page.textContent("#log")).includes("CREATE_COMPLETE"), "the log shows the status");
      expect(await page.$$eval("#resources tbody tr", (r) => r.length) >= 2, "resources listed");
      await page.waitForSelector("#usage-intervals tbody tr");
      const held = await page.textContent("#usage-intervals tbody");
      expect(held.includes("local") && held.includes("held now"), "usage: the node held at local");
      expect(/ (s|h)$/.test(await page.textContent("#usage-node-hours")), "usage: node time shown");
      await shot("deployment");
    });
    await step("endpoint_answers", async () => {
      const tab = await context.newPage();
      const res = await tab.goto(endpoint);
      expect(res.status() === 200, "GET endpoint: " + res.status());
      await tab.close();
    });
    await step("deployments_list_and_sites", async () => {
      await page.click("nav >> text=Deployments");
      await page.waitForSelector(`#deployments tr[data-uuid='${uuid}'] [data-status=CREATE_COMPLETE]`);
      await shot("deployments");
      await page.click("nav >> text=Sites");
      await page.waitForSelector("#sites tr[data-site=local] .status.ok");
      await shot("sites");
      await page.click("nav >> text=Sign in");
      await page.waitForSelector("#token");
      await shot("signin");
    });
    await step("list_is_live", async () => {
      /* a deployment made elsewhere (here, the API) shows up, completes and goes while the
       * list stays open: the page follows /deployments/changes, no reload */
      await page.goto(url + "/ui/#/deployments");
      await page.waitForSelector(`#deployments tr[data-uuid='${uuid}']`);
      const made = await (await fetch(url + "/deployments", { method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ templateName: "gpu-training" }) })).json();
      expect(made.uuid, "created through the API: " + JSON.stringify(made));
      await page.waitForSelector(`#deployments tr[data-uuid='${made.uuid}'] [data-status=CREATE_COMPLETE]`,
        { timeout: 60000 });
      const res = await fetch(url + "/deployments/" + made.uuid, { method: "DELETE" });
      expect(res.status === 204, "DELETE: " + res.status);
      await page.waitForSelector(`#deployments tr[data-uuid='${made.uuid}']`, { state: "detached", timeout: 60000 });
    });
    await step("delete_from_its_page", async () => {
      await page.goto(url + "/ui/#/deployments/" + uuid);
      await page.waitForSelector("#details [data-status=CREATE_COMPLETE]");
      page.once("dialog", (d) => d.accept());
      await page.click("#delete");
      await page.waitForSelector("#details [data-status=DELETE_COMPLETE]", { timeout: 60000 });
      await page.click("nav >> text=Deployments");
      await page.waitForSelector("#deployments tbody tr");
      expect(!(await page.$(`#deployments tr[data-uuid='${uuid}']`)), "gone from the list");
    });
    await step("no_script_errors", async () => {
      expect(problems.length === 0, problems.join("; "));
    });
  } finally {
    await browser.close();
  }
}

main().then(() => {
  process.stdout.write(`[  PASSED  ] ${results.length} test(s).\n`);
}, (e) => {
  const passed = results.filter((r) => r[1]).length;
  process.stdout.write(`${e.stack || e}\n[  PASSED  ] ${passed} test(s).\n[  FAILED  ] 1 test(s), listed below:\n`);
  process.exitCode = 1;
});
