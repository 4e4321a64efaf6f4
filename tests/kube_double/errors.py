"""kube-apiserver error answers: `Status` bodies with the real wording."""

from __future__ import annotations


class ApiError(Exception):
    """An answer other than success: HTTP status + body (a Status dict, or
    plain text for routes the server does not serve)."""

    def __init__(self, code: int, body, content_type: str = "application/json"):
        super().__init__(body if isinstance(body, str) else body.get("message", ""))
        self.code = code
        self.body = body
        self.content_type = content_type


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(rtype, name) -> dict:
    details = {"name": name}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = rtype.plural
    return details


def page_not_found() -> ApiError:
    """What the server answers for a resource type or group it does not serve (recordings 10, 11)."""
    return ApiError(404, "404 page not found\n", "text/plain; charset=utf-8")


def not_found(rtype, name) -> ApiError:
    return ApiError(404, status_body(404, "NotFound", f'{rtype.group_resource} "{name}" not found',
                                     _details(rtype, name)))


def namespace_not_found(namespace) -> ApiError:
    return ApiError(404, status_body(404, "NotFound", f'namespaces "{namespace}" not found',
                                     {"name": namespace, "kind": "namespaces"}))


def already_exists(rtype, name, being_deleted: bool = False) -> ApiError:
    """409 AlreadyExists (recording 16); for an object still being deleted (a terminating
    namespace) the message starts "object is being deleted: " (stored-forms/namespace-deletion.json)."""
    prefix = "object is being deleted: " if being_deleted else ""
    return ApiError(409, status_body(409, "AlreadyExists",
                                     f'{prefix}{rtype.group_resource} "{name}" already exists',
                                     _details(rtype, name)))


def namespace_terminating(rtype, name, namespace) -> ApiError:
    """403 for a create in a terminating namespace (stored-forms/namespace-deletion.json)."""
    details = _details(rtype, name)
    details["causes"] = [{"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated",
                          "field": "metadata.namespace"}]
    return ApiError(403, status_body(
        403, "Forbidden", f'{rtype.group_resource} "{name}" is forbidden: unable to create new content in namespace '
        f"{namespace} because it is being terminated", details))


def conflict(rtype, name) -> ApiError:
    return ApiError(409, status_body(
        409, "Conflict",
        f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again", _details(rtype, name)))


def invalid(rtype, name, causes) -> ApiError:
    """422 Invalid with one cause per field (recordings 29, 32, 33)."""
    qualified = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    text = str(causes[0]) if len(causes) == 1 else "[" + ", ".join(str(c) for c in causes) + "]"
    details = {"name": name} if name else {}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = rtype.kind
    details["causes"] = [c.as_dict() for c in causes]
    return ApiError(422, status_body(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details))


def bad_request(message: str) -> ApiError:
    return ApiError(400, status_body(400, "BadRequest", message))


def unsupported_media_type(accepted: list[str]) -> ApiError:
    return ApiError(415, status_body(
        415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted)))


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, status_body(405, "MethodNotAllowed", message, {}))


def unauthorized() -> ApiError:
    return ApiError(401, status_body(401, "Unauthorized", "Unauthorized"))


def internal_error(message: str) -> ApiError:
    return ApiError(500, status_body(500, "InternalError", f"Internal error occurred: {message}",
                                     {"causes": [{"message": message}]}))
