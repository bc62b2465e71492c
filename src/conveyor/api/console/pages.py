"""The console's pages, their live fragments (htmx polls them every few
seconds) and its actions. Every page and fragment needs a session (see
``auth.py``); a page without one answers the login page, a fragment 401."""

from __future__ import annotations

import hashlib
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from conveyor import __version__
from conveyor.api.console import data
from conveyor.api.console.auth import ConsoleAuth
from conveyor.api.console.charts import task_charts
from conveyor.api.console.graph import state_graph
from conveyor.core.errors import ConveyorError, NotFoundError
from conveyor.service import Conveyor

HERE = Path(__file__).parent
STATIC = "/console/static"
POLL_SECONDS = 2
NAV = [("/", "Tasks"), ("/executions", "Executions"), ("/rules", "Rules"), ("/statements", "Statements")]
NAV += [("/lake", "Lake"), ("/docs", "API")]
TASKS_REGION = ("tasks", "/console/fragments/tasks", "fragments/tasks.html")
EXECUTIONS_REGION = ("executions", "/console/fragments/executions", "fragments/executions.html")
RULES_REGION = ("rules", "/console/fragments/rules", "fragments/rules.html", 10.0)
STATEMENTS_REGION = ("statements", "/console/fragments/statements", "fragments/statements.html")


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (their first values), without python-multipart."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def create_console(service: Conveyor, token: str | None, openapi_url: str | None) -> FastAPI:
    """The console as its own small app (no OpenAPI of its own, no bearer token)."""
    auth = ConsoleAuth(token)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals |= {"static": STATIC, "nav": NAV, "poll": POLL_SECONDS, "version": __version__}
    templates.env.globals["auth_open"] = auth.open
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.mount(STATIC, StaticFiles(directory=str(HERE / "static")), name="console-static")

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        if not auth.allowed(request):
            return login_page(request)
        context["logged_in"] = True
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def live(
        request: Request, region: str, url: str, name: str, every: float | None = POLL_SECONDS, **context: Any
    ) -> tuple[str, str]:
        """A region htmx refreshes every ``every`` seconds: its HTML and its digest. The
        region asks with the digest it shows, and an unchanged region answers 204 (not
        swapped), so buttons and selections are not replaced under the user's pointer."""
        inner = templates.get_template(name).render({"request": request, **context})
        digest = hashlib.sha256(inner.encode()).hexdigest()[:16]
        polling = ""
        if every is not None:
            sep = "&" if "?" in url else "?"
            polling = (
                f' hx-get="{escape(url)}{sep}seen={digest}" hx-trigger="every {every:g}s" hx-swap="outerHTML"'
            )
        return f'<div id="{region}" class="live"{polling}>{inner}</div>', digest

    def fragment(
        request: Request, region: str, url: str, name: str, every: float | None = POLL_SECONDS, **context: Any
    ) -> Response:
        if not auth.allowed(request):
            return Response("log in first", status_code=401)
        html, digest = live(request, region, url, name, every, **context)
        if request.query_params.get("seen") == digest:
            return Response(status_code=204)
        return HTMLResponse(html)

    def login_page(request: Request, error: str | None = None) -> Response:
        target = request.url.path if request.url.path.startswith("/") else "/"
        context = {"error": error, "next": target, "page_title": "Log in"}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)

    def after_login(target: str, request: Request) -> Response:
        safe = target if target.startswith("/") and not target.startswith("//") else "/"
        response = RedirectResponse(safe, status_code=303)
        auth.log_in(request, response)
        return response

    def failure(request: Request, exc: ConveyorError) -> Response:
        status = 404 if isinstance(exc, NotFoundError) else 409
        return page(request, "error.html", status, message=str(exc), page_title="Not available")

    @console.exception_handler(ConveyorError)
    def _gone(request: Request, exc: ConveyorError) -> Response:
        """A fragment or action on something that went away (a task no longer applied)."""
        status = 404 if isinstance(exc, NotFoundError) else 409
        context = {"message": str(exc), "ok": False}
        return templates.TemplateResponse(request, "fragments/flash.html", context, status_code=status)

    # --- logging in ---------------------------------------------------------------------------

    @console.get("/", response_class=HTMLResponse)
    def home(request: Request, token: str | None = None) -> Response:
        if token is not None and not auth.open:
            if auth.token_ok(token):
                return after_login("/", request)
            return login_page(request, "That token is not this server's.")
        if not auth.allowed(request):
            return login_page(request)
        region, _ = live(request, *TASKS_REGION, tasks=data.tasks_overview(service))
        return page(request, "home.html", region=region, page_title="Tasks")

    @console.post("/console/login")
    async def log_in(request: Request) -> Response:
        form = await _form(request)
        if auth.token_ok(form.get("token")):
            return after_login(form.get("next") or "/", request)
        return login_page(request, "That token is not this server's.")

    @console.post("/console/logout")
    def log_out(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        auth.log_out(request, response)
        return response

    # --- tasks --------------------------------------------------------------------------------

    @console.get("/console/fragments/tasks")
    def tasks_fragment(request: Request) -> Response:
        return fragment(request, *TASKS_REGION, tasks=data.tasks_overview(service))

    def task_regions(name: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
        url = f"/console/fragments/tasks/{quote(name, safe='')}"
        return ("task-head", f"{url}/head", "fragments/task_head.html"), (
            "task-live",
            url,
            "fragments/task.html",
        )

    def task_body(name: str) -> dict[str, Any]:
        return {
            "task": data.task_detail(service, name),
            "charts": task_charts(data.task_samples(service, name)),
            "events": data.task_events(service, name),
        }

    @console.get("/tasks/{name}", response_class=HTMLResponse)
    def task_page(request: Request, name: str) -> Response:
        if not auth.allowed(request):
            return login_page(request)
        try:
            context = task_body(name)
        except ConveyorError as exc:
            return failure(request, exc)
        head_region, body_region = task_regions(name)
        head, _ = live(request, *head_region, **context)
        region, _ = live(request, *body_region, **context)
        return page(request, "task.html", head=head, region=region, page_title=f"Task {name}", **context)

    @console.get("/console/fragments/tasks/{name}/head")
    def task_head_fragment(request: Request, name: str) -> Response:
        if not auth.allowed(request):
            return Response("log in first", status_code=401)
        return fragment(request, *task_regions(name)[0], task=data.task_detail(service, name))

    @console.get("/console/fragments/tasks/{name}")
    def task_fragment(request: Request, name: str) -> Response:
        if not auth.allowed(request):
            return Response("log in first", status_code=401)
        return fragment(request, *task_regions(name)[1], **task_body(name))

    @console.post("/console/actions/tasks/{name}/{action}")
    async def task_action(request: Request, name: str, action: str) -> Response:
        if not auth.allowed(request) or not auth.same_origin_action(request):
            return Response("not allowed", status_code=403)
        table = (await _form(request)).get("table")
        try:
            message, ok = data.task_action(service, name, action, table), True
        except ConveyorError as exc:
            message, ok = str(exc), False
        return templates.TemplateResponse(request, "fragments/flash.html", {"message": message, "ok": ok})

    # --- executions ---------------------------------------------------------------------------

    @console.get("/executions", response_class=HTMLResponse)
    def executions_page(request: Request) -> Response:
        if not auth.allowed(request):
            return login_page(request)
        region, _ = live(request, *EXECUTIONS_REGION, executions=data.executions_list(service))
        return page(request, "executions.html", region=region, page_title="Executions")

    @console.get("/console/fragments/executions")
    def executions_fragment(request: Request) -> Response:
        return fragment(request, *EXECUTIONS_REGION, executions=data.executions_list(service))

    def execution_region(ref: str, status: str) -> tuple[str, str, str, float | None]:
        url = f"/console/fragments/executions/{quote(ref, safe='')}"
        return (
            "execution-live",
            url,
            "fragments/execution.html",
            POLL_SECONDS if status == "RUNNING" else None,
        )

    def execution_context(ref: str) -> dict[str, Any]:
        detail = data.execution_detail(service, ref)
        graph = state_graph(
            detail["definition"], detail["path"], status=detail["status"], failed_state=detail["failed_state"]
        )
        return {"execution": detail, "graph": graph}

    @console.get("/executions/{ref}", response_class=HTMLResponse)
    def execution_page(request: Request, ref: str) -> Response:
        if not auth.allowed(request):
            return login_page(request)
        try:
            context = execution_context(ref)
        except ConveyorError as exc:
            return failure(request, exc)
        region, _ = live(request, *execution_region(ref, context["execution"]["status"]), **context)
        return page(request, "execution.html", region=region, page_title=f"Execution {ref}", **context)

    @console.get("/console/fragments/executions/{ref}")
    def execution_fragment(request: Request, ref: str) -> Response:
        if not auth.allowed(request):
            return Response("log in first", status_code=401)
        context = execution_context(ref)
        return fragment(request, *execution_region(ref, context["execution"]["status"]), **context)

    # --- rules and statements -----------------------------------------------------------------

    @console.get("/rules", response_class=HTMLResponse)
    def rules_page(request: Request) -> Response:
        if not auth.allowed(request):
            return login_page(request)
        region, _ = live(request, *RULES_REGION, rules=data.rules(service))
        return page(request, "rules.html", region=region, page_title="Rules and schedules")

    @console.get("/console/fragments/rules")
    def rules_fragment(request: Request) -> Response:
        return fragment(request, *RULES_REGION, rules=data.rules(service))

    @console.get("/statements", response_class=HTMLResponse)
    def statements_page(request: Request) -> Response:
        if not auth.allowed(request):
            return login_page(request)
        region, _ = live(request, *STATEMENTS_REGION, statements=data.statements(service))
        return page(request, "statements.html", region=region, page_title="Statements")

    @console.get("/console/fragments/statements")
    def statements_fragment(request: Request) -> Response:
        return fragment(request, *STATEMENTS_REGION, statements=data.statements(service))

    @console.get("/console/fragments/statements/{statement_id}")
    def statement_fragment(request: Request, statement_id: str) -> Response:
        if not auth.allowed(request):
            return Response("log in first", status_code=401)
        try:
            result = data.statement_result(service, statement_id)
        except ConveyorError as exc:
            return templates.TemplateResponse(
                request, "fragments/flash.html", {"message": str(exc), "ok": False}
            )
        return templates.TemplateResponse(request, "fragments/statement.html", {"result": result})

    # --- the lake -----------------------------------------------------------------------------

    @console.get("/lake", response_class=HTMLResponse)
    def lake_page(request: Request) -> Response:
        if not auth.allowed(request):
            return login_page(request)
        try:
            lake = data.lake_overview(service)
        except ConveyorError as exc:
            return failure(request, exc)
        return page(request, "lake.html", lake=lake, page_title="Lake")

    @console.post("/console/lake/query")
    async def lake_query(request: Request) -> Response:
        if not auth.allowed(request) or not auth.same_origin_action(request):
            return Response("not allowed", status_code=403)
        sql = (await _form(request)).get("sql") or ""
        try:
            result, error = data.lake_query(service, sql), None
        except ConveyorError as exc:
            result, error = None, str(exc)
        return templates.TemplateResponse(
            request, "fragments/query.html", {"result": result, "error": error, "sql": sql}
        )

    # --- the API's docs, offline ----------------------------------------------------------------

    @console.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url or "/openapi.json",
            title="Conveyor API",
            swagger_js_url=f"{STATIC}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @console.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    return console
