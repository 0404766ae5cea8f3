"""Composition root: the Functions app. Only a runtime (Azure Functions or devhost) loads it."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from activities.campaign import blueprint as campaign_activities
from activities.crm_events import blueprint as crm_functions
from activities.deals import blueprint as deal_activities
from activities.meetings import blueprint as meeting_activities
from activities.schedules import blueprint as schedules
from http_api.app import create_app
from http_api.durable import durable_client_var
from http_api.events import stream_events
from orchestrators.campaign import blueprint as campaign_orchestrators
from orchestrators.deals import blueprint as deal_orchestrators
from orchestrators.meetings import blueprint as meeting_orchestrators
from shared.config import get_settings
from shared.identity.authentication import Authenticator
from shared.telemetry.logging import configure_logging

configure_logging(get_settings().log_level)

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(campaign_orchestrators)
app.register_functions(campaign_activities)
app.register_functions(schedules)
app.register_functions(crm_functions)
app.register_functions(deal_orchestrators)
app.register_functions(deal_activities)
app.register_functions(meeting_orchestrators)
app.register_functions(meeting_activities)
api = create_app()
asgi = func.AsgiMiddleware(api)
# The event stream shares the API's authenticator, and with it one JWKS cache.
authenticator: Authenticator = api.state.authenticator


@app.function_name("events_stream")
@app.route(route="v1/events/stream", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def events_stream(req: Request) -> Response:
    return await stream_events(req, authenticator)


@app.function_name("http_api")
@app.route(
    route="{*route}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
@app.durable_client_input(client_name="client")
async def http_api(
    req: func.HttpRequest, context: func.Context, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    token = durable_client_var.set(client)
    try:
        return await asgi.handle_async(req, context)
    finally:
        durable_client_var.reset(token)
