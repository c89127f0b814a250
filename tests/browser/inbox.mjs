// Opens smtp's web inbox in Debian's chromium through playwright-core and checks what a reader
// sees, printing one JSON object of findings for tests/tests/smtp/inbox_browser.rs to assert.
// Usage: node inbox.mjs BASE_URL SMTP_PORT MAILDIR ATTACHMENT SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, smtpPort, maildir, attachment, shots] = process.argv.slice(2);
const out = { requests: [], dialogs: 0 };
const profile = mkdtempSync(join(tmpdir(), "inbox-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1200, height: 800 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  // Chromium reports a request the Content-Security-Policy stopped in the renderer as a
  // request that failed with "csp": it never left the browser. Any other is counted.
  const blockedByCsp = new Set();
  context.on("request", (r) => out.requests.push(r));
  context.on("requestfailed", (r) => { if (r.failure()?.errorText === "csp") blockedByCsp.add(r); });
  const page = context.pages()[0] || (await context.newPage());
  page.on("dialog", async (d) => { out.dialogs += 1; await d.dismiss(); });
  await page.goto(base);
  await page.waitForSelector('body[data-live="1"]', { timeout: 15000 });
  const navigations = [];
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });

  const swaks = (args) => execFileSync("swaks", ["--server", "127.0.0.1", "--port", smtpPort,
    "--to", "bob@example.test", "--helo", "client.example.test", ...args], { stdio: "ignore" });
  // A message with text and HTML alternatives and a binary attachment, built here so the
  // structure is exactly what the checks expect.
  const bin = readFileSync(attachment).toString("base64").replace(/.{1,76}/g, "$&\r\n");
  const plain = join(profile, "plain.eml");
  writeFileSync(plain, [
    "From: Alice <alice@example.test>", "To: bob@example.test", "Subject: hello browser",
    "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="m1"', "",
    "--m1", 'Content-Type: multipart/alternative; boundary="a1"', "",
    "--a1", "Content-Type: text/plain; charset=utf-8", "", "text part words",
    "--a1", "Content-Type: text/html; charset=utf-8", "", "<p>html <b>bold words</b></p>",
    "--a1--", "",
    "--m1", "Content-Type: application/octet-stream",
    'Content-Disposition: attachment; filename="data.bin"', "Content-Transfer-Encoding: base64", "",
    bin, "--m1--", "",
  ].join("\r\n"));
  const hostile = join(profile, "hostile.eml");
  writeFileSync(hostile, [
    "From: Mallory <mallory@example.test>", "To: bob@example.test",
    "Subject: <script>alert(1)</script>", "MIME-Version: 1.0",
    "Content-Type: text/html; charset=utf-8", "",
    '<p>hostile</p><script>window.parent.marker=1;window.marker=1</script>' +
      '<img src=x onerror="window.parent.marker=2"><img src="http://198.18.0.9/x.png">', "",
  ].join("\r\n"));
  swaks(["--from", "alice@example.test", "--data", "@" + plain]);
  swaks(["--from", "mallory@example.test", "--data", "@" + hostile]);
  await page.waitForFunction(() => document.querySelectorAll("#list li").length === 2, null, { timeout: 15000 });
  out.appearedWithoutReload = navigations.length === 0;
  out.listSubjects = await page.$$eval("#list li .subject", (els) => els.map((e) => e.firstChild.textContent));
  await page.screenshot({ path: join(shots, "inbox-list.png") });

  // The plain message: subject, text and HTML parts, the attachment downloaded.
  await page.click("#list li:has-text('hello browser')");
  await page.waitForSelector("#message-view:not([hidden])");
  out.subject = await page.textContent("#m-subject");
  out.text = await page.textContent("#m-text");
  await page.click("#tabs button[data-tab=html]");
  out.html = await page.frameLocator("#m-html").locator("b").textContent({ timeout: 10000 });
  await page.screenshot({ path: join(shots, "inbox-message.png") });
  await page.click("#tabs button[data-tab=text]");
  const link = page.locator("#m-attachments a", { hasText: "data.bin" });
  await link.scrollIntoViewIfNeeded();
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 15000 }),
    link.click(),
  ]);
  const got = readFileSync(await download.path());
  out.downloadIdentical = Buffer.compare(got, readFileSync(attachment)) === 0;
  out.downloadName = download.suggestedFilename();
  await page.click("#back");

  // The hostile message: no script ran, the remote image never requested, the count shown.
  await page.click("#list li:has-text('mallory')");
  await page.waitForSelector("#message-view:not([hidden])");
  out.hostileSubject = await page.textContent("#m-subject");
  await page.click("#tabs button[data-tab=html]");
  await page.frameLocator("#m-html").locator("p").textContent({ timeout: 10000 });
  await page.waitForTimeout(500);
  out.marker = await page.evaluate(() => window.marker ?? null);
  out.blocked = await page.textContent("#m-blocked");
  await page.click("#back");

  // Search narrows the list.
  await page.fill("#q", "from:alice");
  await page.press("#q", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#list li").length === 1, null, { timeout: 10000 });
  out.searchSubjects = await page.$$eval("#list li .subject", (els) => els.map((e) => e.firstChild.textContent));

  // Delete the one found: its file leaves the Maildir.
  const deleted = await page.getAttribute("#list li", "data-id");
  out.deleted = deleted;
  await page.click("#list li");
  await page.waitForSelector("#message-view:not([hidden])");
  await page.click("#delete-one");
  await page.fill("#q", "");
  await page.press("#q", "Enter");
  // The list without the search: one message, and not the one deleted.
  await page.waitForFunction((gone) => {
    const items = [...document.querySelectorAll("#list li")];
    return items.length === 1 && items[0].dataset.id !== gone;
  }, deleted, { timeout: 10000 });
  out.pageIds = await page.$$eval("#list li", (els) => els.map((e) => e.dataset.id));
  out.files = ["new", "cur"].flatMap((f) => readdirSync(join(maildir, f)).filter((n) => !n.startsWith(".")));
  await page.waitForTimeout(500);
  const left = out.requests.filter((r) => !blockedByCsp.has(r)).map((r) => r.url());
  out.remoteBlocked = out.requests.filter((r) => blockedByCsp.has(r) && r.url().includes("198.18.0.9")).length;
  out.remoteRequests = left.filter((u) => u.includes("198.18.0.9")).length;
  out.foreignRequests = left.filter((u) => !u.startsWith(base) && !u.startsWith("data:") && !u.startsWith("about:")).length;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
delete out.requests;
console.log(JSON.stringify(out));
