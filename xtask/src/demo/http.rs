//! `cargo xtask demo http`: the two messages of one GET, line by line; two requests the server
//! cannot tell apart (HTTP is stateless); then cookies, which let it tell; and a smuggling
//! attempt refused.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use protolab_tests::Server;

use super::{note, run_shown};
use crate::util;

pub fn run(args: &[String]) -> Result<()> {
    if let Some(other) = args.first() {
        bail!("unknown option {other:?}: demo http takes no options");
    }
    let bins = util::build_bins_of(false, &["protolab-http"])?;
    let http = bins.join("http");
    let dir = util::root().join("target").join("demo").join("http");
    let _ = std::fs::remove_dir_all(&dir);
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("somedir"))?;
    std::fs::write(
        site.join("somedir").join("page.html"),
        "<html><body><h1>A page</h1></body></html>\n",
    )?;
    let jar = dir.join("cookies.txt");

    println!("== HTTP/1.1: the request message and the response message ==\n");
    let server = Server::start_cmd(
        "http serve",
        {
            let mut c = Command::new(&http);
            c.args(["serve", "--listen", "127.0.0.1:0", "--root"])
                .arg(&site)
                .env("RUST_LOG", "warn");
            c
        },
        1,
    );
    let addr = server.addr("tcp");
    println!(
        "$ http serve --listen 127.0.0.1:0 --root {}",
        site.display()
    );
    println!("listening tcp {addr}\n");

    let page = format!("http://{addr}/somedir/page.html");
    run_shown(
        Command::new(&http).args(["get", &page]),
        &format!("http get {page}"),
        false,
    )?;
    note(
        "Lines starting with > are the request message exactly as sent, < the response.\n\
         The request line: method GET, the object's path, the version HTTP/1.1.\n\
         Then the header lines: Host (which site: one address can serve many), Connection: close\n\
         (this is the last request, so no keep-alive), User-Agent (the browser type),\n\
         Accept-Language (the language wanted) and Accept. A blank line ends the head.\n\
         The response: a status line (version, code 200, phrase OK), header lines (Date,\n\
         Last-Modified and ETag for caches, Content-Type, Content-Length: the body's framing),\n\
         a blank line, then the body. HTTP runs over TCP: the * lines time each phase.",
    );

    println!("\n== Stateless: two requests, and the server knows nothing of the first ==\n");
    let cookies = format!("http://{addr}/cookies");
    run_shown(
        Command::new(&http).args(["get", &cookies, &cookies]),
        &format!("http get {cookies} {cookies}"),
        false,
    )?;
    note(
        "Both requests went over the same TCP connection (reusing connection), and still the\n\
         server says \"visit 1\" twice: HTTP keeps no state between requests. The counter it\n\
         offers lives in Set-Cookie: visits=1, and this client has no jar to keep it.",
    );

    println!("\n== Cookies: Set-Cookie, then Cookie, and now it knows you ==\n");
    let set = format!("http://{addr}/cookies/set?name=demo");
    run_shown(
        Command::new(&http)
            .args(["get", "--cookie-jar"])
            .arg(&jar)
            .args([&set, &cookies, &cookies]),
        &format!(
            "http get --cookie-jar {} {set} {cookies} {cookies}",
            jar.display()
        ),
        false,
    )?;
    note(
        "The first response says Set-Cookie: name=demo. The client keeps it in its jar and sends\n\
         it back in a Cookie header line with every later request to this server, together with\n\
         the visit counter: now the server knows who you are and how often you came, though it\n\
         stored nothing. The jar file is in curl's format:",
    );
    for line in std::fs::read_to_string(&jar)?.lines() {
        println!("    {line}");
    }

    println!("\n== Framing: where one message ends, and a smuggling attempt refused ==\n");
    let attack = "POST / HTTP/1.1\r\nHost: demo\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: demo\r\n\r\n";
    println!("> (raw) {}", attack.replace("\r\n", "\\r\\n"));
    let mut s = util::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(attack.as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    for line in reply.lines().take_while(|l| !l.is_empty()) {
        println!("< {line}");
    }
    note(
        "Content-Length says the body is 4 bytes; Transfer-Encoding says it is chunked and ends\n\
         at 0 CRLF CRLF. A front end believing one and a back end the other would disagree on\n\
         where the second request starts: request smuggling. This server answers 400 and\n\
         closes the connection, so /admin is never read as a request.",
    );

    // ---- Cache part --------------------------------------------------------------------------
    // The caching proxy's demo (freshness, validation, a 304 through the cache) continues here.
    println!("\n== A cache in between: MISS, HIT with Age, and a 304 after max-age ==\n");
    super::http_cache::run_with(&http)?;
    // ---- End of the cache part ----------------------------------------------------------------
    drop(server);
    Ok(())
}
