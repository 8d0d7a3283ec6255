//! A real Django project under a `[[wsgi]]` mount, made at test time.
//!
//! The project comes from `django-admin startproject` in `target/pyenv` (scripts/test
//! installs Django there) and is served with that venv's own `bin/python`, as a site
//! would be: the workers find Django only because Portico starts the venv's interpreter by
//! the path written in the config. The checks are the ones a Django site depends on:
//! SCRIPT_NAME in the URLs it builds, the CSRF cookie and token, a multipart upload larger
//! than Django keeps in memory, and a StreamingHttpResponse.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Fixture, Portico};
use crate::http::Request;

const PASSWORD: &str = "correct horse battery staple";

/// Views added to the project: the upload's size and SHA-256, and a streamed answer.
const VIEWS: &str = r#"import hashlib

from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def upload(request):
    upload = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    return JsonResponse({"name": upload.name, "size": upload.size, "sha256": digest.hexdigest(),
                         "note": request.POST["note"]})


def rows(n):
    for i in range(n):
        yield "row %d %s\n" % (i, "x" * 1000)


def stream(request):
    return StreamingHttpResponse(rows(int(request.GET["n"])), content_type="text/plain")
"#;

const SETTINGS: &str = r#"
# Portico's test: the client's Host, and the sqlite file next to manage.py (the default).
ALLOWED_HOSTS = ["portico.test"]
DATABASES["default"]["NAME"] = BASE_DIR / "db.sqlite3"
"#;

const URLS: &str = r#"
from mysite import portico_views

urlpatterns += [
    path("upload/", portico_views.upload),
    path("stream/", portico_views.stream),
]
"#;

/// The venv's Python, with Django importable; panics (not skips) without it.
fn venv_python() -> PathBuf {
    let python = crate::wsgi::venv_python();
    let found = Command::new(&python)
        .args(["-c", "import django"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "Django is missing from {}: scripts/test installs it (pip install django)",
        python.display()
    );
    python
}

/// Runs `program args...` in `dir`; panics with its output if it fails.
fn run(program: &Path, args: &[&str], dir: &Path, env: &[(&str, &str)]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `startproject mysite` in the fixture, with the views above; with `database`, migrated
/// and with a superuser `ada`. Returns Portico serving it at `/site`.
fn serve_project(fx: &Fixture, database: bool) -> Portico {
    let python = venv_python();
    let project = fx.dir("project");
    let admin = python.with_file_name("django-admin");
    run(&admin, &["startproject", "mysite", "."], &project, &[]);
    let append = |rel: &str, text: &str| {
        let path = project.join(rel);
        let mut body = std::fs::read_to_string(&path).unwrap();
        body.push_str(text);
        std::fs::write(&path, body).unwrap();
    };
    append("mysite/settings.py", SETTINGS);
    append("mysite/urls.py", URLS);
    std::fs::write(project.join("mysite/portico_views.py"), VIEWS).unwrap();
    if database {
        run(
            &python,
            &["manage.py", "migrate", "--noinput"],
            &project,
            &[],
        );
        run(
            &python,
            &[
                "manage.py",
                "createsuperuser",
                "--noinput",
                "--username",
                "ada",
                "--email",
                "ada@example.com",
            ],
            &project,
            &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)],
        );
    }
    fx.serve_config(
        &format!(
            r#"
[[wsgi]]
mount = "/site"
app = "mysite.wsgi:application"
python = "{}"
path = ["project"]
workers = 2
"#,
            python.display()
        ),
        &[],
    )
}

/// The value of the form field written `name="NAME" value="..."`, as Django renders the
/// CSRF token's hidden input.
fn form_value<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in\n{html}"));
    let rest = &html[at + name.len() + "name=\"\" value=\"".len()..];
    &rest[..rest.find('"').unwrap()]
}

/// The value of cookie `name` among a response's Set-Cookie fields.
fn cookie<'a>(set_cookies: &[&'a str], name: &str) -> &'a str {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}="))?.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
}

#[test]
fn the_admin_logs_in_under_the_mount_with_its_csrf_token() {
    let fx = Fixture::new();
    let portico = serve_project(&fx, true);

    let page = portico.get("/site/admin/login/");
    assert_eq!(page.status, 200, "{}", portico.log());
    let html = page.text();
    // Django builds the form's URL from SCRIPT_NAME + PATH_INFO (PEP 3333).
    assert!(
        html.contains("action=\"/site/admin/login/\""),
        "the form does not post back under the mount:\n{html}"
    );
    let csrf_cookie = cookie(&page.header_values("Set-Cookie"), "csrftoken").to_owned();
    let token = form_value(&html, "csrfmiddlewaretoken").to_owned();

    let login = |body: String, cookie: Option<&str>| {
        let mut request = Request::post("/site/admin/login/", body)
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header("Cookie", &format!("csrftoken={cookie}"));
        }
        portico.send(&request)
    };
    let credentials = format!(
        "username=ada&password={}&next=%2Fsite%2Fadmin%2F",
        PASSWORD.replace(' ', "+")
    );

    let forged = login(credentials.clone(), None);
    assert_eq!(forged.status, 403, "{}", forged.text());

    let response = login(
        format!("csrfmiddlewaretoken={token}&{credentials}"),
        Some(&csrf_cookie),
    );
    assert_eq!(response.status, 302, "{}", response.text());
    assert_eq!(response.header("Location"), Some("/site/admin/"));
    let session = cookie(&response.header_values("Set-Cookie"), "sessionid").to_owned();
    let index = portico
        .send(&Request::get("/site/admin/").header("Cookie", &format!("sessionid={session}")));
    assert_eq!(index.status, 200);
    assert!(
        index.text().contains("Site administration"),
        "{}",
        index.text()
    );
}

#[test]
fn a_multipart_upload_of_several_mib_arrives_whole() {
    let fx = Fixture::new();
    let portico = serve_project(&fx, false);
    let mut file = vec![0u8; 5 << 20];
    fastrand::fill(&mut file);
    let boundary = "portico-test-boundary-7d4b2c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nfive MiB\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"random.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let request = Request::post("/site/upload/", body).header(
        "Content-Type",
        &format!("multipart/form-data; boundary={boundary}"),
    );
    let response = portico.send(&request);
    assert_eq!(response.status, 200, "{}", response.text());
    let want = format!(
        r#"{{"name": "random.bin", "size": {}, "sha256": "{}", "note": "five MiB"}}"#,
        file.len(),
        crate::wsgi_conformance::sha256_hex(&file)
    );
    assert_eq!(response.text(), want);
}

#[test]
fn a_streaming_http_response_arrives_complete() {
    let fx = Fixture::new();
    let portico = serve_project(&fx, false);
    let response = portico.get("/site/stream/?n=500");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.complete);
    let text = response.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 500);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("row {i} {}", "x".repeat(1000)));
    }
}
