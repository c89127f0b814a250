// Drives smtp's web inbox with mailpit-api, a TypeScript client of Mailpit's API, and prints
// what each call returned as one JSON object. Usage: node mailpit-api.mjs BASE_URL
import { MailpitClient } from "mailpit-api";

const client = new MailpitClient(process.argv[2]);
const out = {};
const list = await client.listMessages();
out.list = { total: list.total, count: list.count, subjects: list.messages.map((m) => m.Subject) };
const latest = await client.getMessageSummary();
out.latest = { ID: latest.ID, Subject: latest.Subject, Text: latest.Text, From: latest.From };
const found = await client.searchMessages({ query: 'from:alice subject:"invoice"' });
out.search = { count: found.messages_count, ids: found.messages.map((m) => m.ID) };
const raw = await client.getMessageSource(found.messages[0].ID);
out.raw = { length: raw.length, hasSubject: raw.includes("Subject: the invoice") };
out.deleted = await client.deleteMessages({ IDs: [found.messages[0].ID] });
const after = await client.listMessages();
out.after = { total: after.total, ids: after.messages.map((m) => m.ID) };
console.log(JSON.stringify(out));
