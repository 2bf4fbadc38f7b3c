"""A catalogue of ~200 MCP-style tools (GitHub, Slack, Jira, Linear, Sentry, Grafana, Postgres, files,
calendar, mail, Notion, weather) shaped like the tools MCP servers expose: snake_case names prefixed by the
service, a one-line description and a JSON schema whose arguments carry descriptions.

Most tools come from a table of services x resources x actions; a few are written out by hand so that
searches have one clearly right answer (a tool found only through an argument's description, say).
"""

from __future__ import annotations

from typing import Any

ACTIONS = {
    "create": ("Create a new {r} {ctx}.", []),
    "get": ("Get the details of one {r} {ctx}.", ["id"]),
    "list": ("List the {r}s {ctx}, newest first, with paging.", ["page", "per_page"]),
    "update": ("Update the fields of an existing {r} {ctx}.", ["id"]),
    "delete": ("Delete a {r} {ctx}. This cannot be undone.", ["id"]),
}
"""action -> (description template, generic argument names)."""

GENERIC_ARGUMENTS = {
    "id": "Identifier of the {r}",
    "page": "Page number of the results (starts at 1)",
    "per_page": "Results per page, at most 100",
}

SERVICES: list[tuple[str, str, list[tuple[str, str, dict[str, str], list[str]]]]] = [
    (
        "github",
        "in a GitHub repository",
        [
            (
                "issue",
                "issue",
                {
                    "owner": "Repository owner",
                    "repo": "Repository name",
                    "title": "Issue title",
                    "body": "Issue body in Markdown",
                    "labels": "Labels to apply",
                },
                ["create", "get", "list", "update"],
            ),
            (
                "pull_request",
                "pull request",
                {
                    "owner": "Repository owner",
                    "repo": "Repository name",
                    "head": "Branch with the changes",
                    "base": "Branch to merge into",
                },
                ["create", "get", "list", "update"],
            ),
            (
                "branch",
                "branch",
                {
                    "owner": "Repository owner",
                    "repo": "Repository name",
                    "from_branch": "Branch to start from",
                },
                ["create", "list", "delete"],
            ),
            (
                "release",
                "release",
                {
                    "owner": "Repository owner",
                    "repo": "Repository name",
                    "tag_name": "Git tag of the release",
                },
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "label",
                "label",
                {"owner": "Repository owner", "repo": "Repository name", "color": "Hex colour without #"},
                ["create", "list", "update", "delete"],
            ),
            (
                "milestone",
                "milestone",
                {"owner": "Repository owner", "repo": "Repository name", "due_on": "Due date, ISO 8601"},
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "workflow_run",
                "workflow run",
                {
                    "owner": "Repository owner",
                    "repo": "Repository name",
                    "status": "queued, in_progress or completed",
                },
                ["get", "list", "delete"],
            ),
            (
                "gist",
                "gist",
                {"files": "File names and contents", "public": "Whether anyone can see it"},
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "webhook",
                "webhook",
                {
                    "owner": "Repository owner",
                    "repo": "Repository name",
                    "url": "Payload URL",
                    "events": "Events that trigger it",
                },
                ["create", "list", "delete"],
            ),
            (
                "repository",
                "repository",
                {
                    "name": "Repository name",
                    "private": "Whether it is private",
                    "default_branch": "Default branch",
                },
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "commit",
                "commit",
                {"owner": "Repository owner", "repo": "Repository name", "sha": "Commit SHA"},
                ["get", "list"],
            ),
        ],
    ),
    (
        "slack",
        "in the Slack workspace",
        [
            (
                "channel",
                "channel",
                {"name": "Channel name without #", "is_private": "Create a private channel"},
                ["create", "get", "list", "update"],
            ),
            (
                "user_group",
                "user group",
                {"handle": "Mention handle of the group"},
                ["create", "list", "update"],
            ),
            (
                "reminder",
                "reminder",
                {"time": "When to remind, natural language or a timestamp"},
                ["create", "get", "list", "delete"],
            ),
            (
                "bookmark",
                "channel bookmark",
                {"channel_id": "Channel holding the bookmark", "link": "URL"},
                ["create", "list", "delete"],
            ),
            (
                "user",
                "user profile",
                {"user_id": "Member", "status_text": "Status shown next to the name"},
                ["get", "list", "update"],
            ),
        ],
    ),
    (
        "linear",
        "in the Linear workspace",
        [
            (
                "issue",
                "issue",
                {"team_id": "Team", "title": "Issue title", "estimate": "Story points"},
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "project",
                "project",
                {"team_ids": "Teams on the project", "target_date": "Target date"},
                ["create", "get", "list"],
            ),
            ("cycle", "cycle", {"team_id": "Team"}, ["get", "list"]),
        ],
    ),
    (
        "jira",
        "in a Jira project",
        [
            (
                "issue",
                "issue",
                {
                    "project_key": "Project key such as PROJ",
                    "summary": "One-line summary",
                    "issue_type": "Bug, Task, Story or Epic",
                    "priority": "Highest to Lowest",
                },
                ["create", "get", "update", "delete"],
            ),
            (
                "sprint",
                "sprint",
                {"board_id": "Scrum board", "goal": "Sprint goal"},
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "comment",
                "issue comment",
                {"issue_key": "Issue key such as PROJ-123", "body": "Comment text"},
                ["create", "list", "update", "delete"],
            ),
            (
                "worklog",
                "worklog entry",
                {"issue_key": "Issue key such as PROJ-123", "time_spent": "Time spent, e.g. 3h 30m"},
                ["create", "list", "delete"],
            ),
            (
                "version",
                "version",
                {"project_key": "Project key such as PROJ", "release_date": "Planned date"},
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "component",
                "component",
                {"project_key": "Project key such as PROJ", "lead": "Component lead"},
                ["create", "list", "delete"],
            ),
        ],
    ),
    (
        "sentry",
        "in a Sentry organization",
        [
            (
                "project",
                "project",
                {"organization_slug": "Organization", "platform": "python, javascript…"},
                ["create", "get", "list", "delete"],
            ),
            (
                "alert_rule",
                "alert rule",
                {"project_slug": "Project", "threshold": "Events that fire it"},
                ["create", "list", "update", "delete"],
            ),
            ("release", "release", {"version": "Release version string"}, ["create", "get", "list"]),
        ],
    ),
    (
        "grafana",
        "in Grafana",
        [
            (
                "dashboard",
                "dashboard",
                {"folder_uid": "Folder", "panels": "Panel definitions"},
                ["create", "get", "list", "update", "delete"],
            ),
            (
                "datasource",
                "data source",
                {"type": "prometheus, loki, postgres…", "url": "Server URL"},
                ["create", "get", "list", "delete"],
            ),
            (
                "annotation",
                "annotation",
                {"dashboard_uid": "Dashboard", "text": "Annotation text"},
                ["create", "list", "delete"],
            ),
        ],
    ),
    (
        "postgres",
        "in the PostgreSQL database",
        [
            (
                "table",
                "table",
                {"schema": "Schema name, default public", "table": "Table name"},
                ["get", "list"],
            ),
            (
                "index",
                "index",
                {"table": "Table name", "columns": "Indexed columns"},
                ["create", "list", "delete"],
            ),
            (
                "role",
                "role",
                {"role_name": "Role name", "login": "Whether the role can log in"},
                ["create", "list"],
            ),
            (
                "view",
                "view",
                {"view_name": "View name", "query": "SELECT statement behind the view"},
                ["create", "list", "delete"],
            ),
        ],
    ),
    (
        "filesystem",
        "on the local file system",
        [
            ("directory", "directory", {"path": "Absolute path"}, ["create", "list", "delete"]),
            (
                "symlink",
                "symbolic link",
                {"path": "Link path", "target": "What the link points to"},
                ["create", "get", "delete"],
            ),
        ],
    ),
    (
        "calendar",
        "in Google Calendar",
        [
            ("calendar", "calendar", {"summary": "Calendar title"}, ["create", "get", "list", "delete"]),
            (
                "acl_rule",
                "sharing rule",
                {"calendar_id": "Calendar", "role": "reader, writer or owner"},
                ["create", "list", "delete"],
            ),
        ],
    ),
    (
        "gmail",
        "in the Gmail mailbox",
        [
            (
                "draft",
                "draft",
                {"to": "Recipients", "subject": "Subject line", "body": "Message body"},
                ["create", "get", "list", "update", "delete"],
            ),
            ("label", "mail label", {"name": "Label name"}, ["create", "list", "delete"]),
            (
                "filter",
                "mail filter",
                {"criteria": "Which messages it matches", "action": "What it does"},
                ["create", "list", "delete"],
            ),
        ],
    ),
    (
        "notion",
        "in the Notion workspace",
        [
            (
                "page",
                "page",
                {"parent_id": "Parent page or database", "title": "Page title"},
                ["create", "get", "update", "delete"],
            ),
            (
                "database",
                "database",
                {"parent_id": "Parent page", "properties": "Column definitions"},
                ["create", "get", "list", "update"],
            ),
            (
                "block",
                "content block",
                {"block_id": "Block", "children": "Blocks to append"},
                ["get", "list", "update", "delete"],
            ),
            ("comment", "page comment", {"page_id": "Page", "rich_text": "Comment text"}, ["create", "list"]),
        ],
    ),
]

HANDWRITTEN: list[tuple[str, str, dict[str, str]]] = [
    ("github_merge_pull_request", "Merge an open pull request in a GitHub repository.",
     {"owner": "Repository owner", "repo": "Repository name", "pull_number": "Pull request number",
      "merge_method": "merge, squash or rebase"}),
    ("github_search_code", "Search source code across GitHub repositories with GitHub's code search syntax.",
     {"q": "Search query, e.g. 'addClass in:file language:js'"}),
    ("github_add_issue_comment", "Add a comment to an issue or pull request in a GitHub repository.",
     {"owner": "Repository owner", "repo": "Repository name", "issue_number": "Issue number",
      "body": "Comment text in Markdown"}),
    ("github_get_file_contents", "Get the contents of a file or directory from a GitHub repository.",
     {"owner": "Repository owner", "repo": "Repository name", "path": "Path in the repository",
      "ref": "Branch, tag or commit SHA"}),
    ("github_fork_repository", "Fork a GitHub repository to your account or an organization.",
     {"owner": "Repository owner", "repo": "Repository name", "organization": "Fork into this organization"}),
    ("slack_send_message", "Post a message to a Slack channel or a direct message conversation.",
     {"channel_id": "Channel or conversation to post in", "text": "Message text, Slack mrkdwn",
      "thread_ts": "Timestamp of the parent message to reply in its thread"}),
    ("slack_add_reaction", "Add an emoji reaction to a Slack message.",
     {"channel_id": "Channel of the message", "timestamp": "Message timestamp",
      "name": "Emoji name without colons"}),
    ("slack_get_channel_history", "Read the recent messages of a Slack channel.",
     {"channel_id": "Channel to read", "limit": "Messages to return, at most 1000"}),
    ("slack_search_messages", "Search Slack messages across every channel you can read.",
     {"query": "Search words, with Slack modifiers such as in:#channel or from:@user"}),
    ("slack_upload_file", "Upload a file and share it in Slack channels.",
     {"channels": "Channels to share the file in", "content": "File content", "filename": "File name"}),
    ("jira_search_issues", "Search Jira issues with a JQL query.",
     {"jql": "JQL query, e.g. project = PROJ AND status = 'In Progress'", "max_results": "At most 100"}),
    ("jira_transition_issue", "Move a Jira issue to another workflow status such as In Progress or Done.",
     {"issue_key": "Issue key such as PROJ-123", "transition_id": "Transition to apply"}),
    ("jira_assign_issue", "Assign a Jira issue to a user.",
     {"issue_key": "Issue key such as PROJ-123", "account_id": "Assignee's account"}),
    ("jira_link_issues", "Link two Jira issues, e.g. 'blocks' or 'relates to'.",
     {"inward_issue": "Issue key", "outward_issue": "Issue key", "link_type": "Kind of link"}),
    ("sentry_list_issues", "List the unresolved error issues of a Sentry project.",
     {"project_slug": "Project", "query": "Sentry search query, e.g. is:unresolved level:error"}),
    ("sentry_get_event", "Get one error event of a Sentry project with its stack trace.",
     {"project_slug": "Project", "event_id": "Event identifier"}),
    ("sentry_resolve_issue", "Mark a Sentry issue as resolved.",
     {"issue_id": "Issue identifier", "in_next_release": "Resolve it in the next release only"}),
    ("grafana_query_prometheus", "Run a PromQL query against a Prometheus data source in Grafana.",
     {"datasource_uid": "Prometheus data source", "expr": "PromQL expression", "start": "Range start",
      "end": "Range end", "step": "Resolution step"}),
    ("grafana_query_loki", "Run a LogQL query against a Loki data source to read logs.",
     {"datasource_uid": "Loki data source", "logql": "LogQL expression", "limit": "Log lines to return"}),
    ("postgres_run_query", "Execute a read-only SQL query and return the rows.",
     {"sql": "SELECT statement to run", "params": "Values for $1, $2…"}),
    ("postgres_explain_query", "Show the execution plan PostgreSQL chooses for a SQL query.",
     {"sql": "Statement to explain", "analyze": "Run it and report actual timings"}),
    ("filesystem_read_file", "Read a text file from the local file system.",
     {"path": "Absolute path of the file", "encoding": "Text encoding, default utf-8"}),
    ("filesystem_write_file", "Write text to a file on the local file system, replacing its contents.",
     {"path": "Absolute path of the file", "content": "New contents"}),
    ("filesystem_move_file", "Move or rename a file or directory on the local file system.",
     {"source": "Current path", "destination": "New path"}),
    ("filesystem_search_files", "Find files under a directory whose names match a glob pattern.",
     {"path": "Directory to search", "pattern": "Glob such as **/*.py"}),
    ("calendar_create_event", "Schedule an event in Google Calendar and invite attendees.",
     {"calendar_id": "Calendar", "summary": "Event title", "start": "Start time",
      "end": "End time", "time_zone": "IANA zone name such as Europe/Paris", "attendees": "Guest emails"}),
    ("calendar_list_events", "List the events of a Google Calendar between two dates.",
     {"calendar_id": "Calendar", "time_min": "From", "time_max": "Until"}),
    ("calendar_find_free_time", "Find slots when all the given people are free for a meeting.",
     {"attendees": "People who must attend", "duration_minutes": "Meeting length"}),
    ("gmail_send_email", "Send an email from the Gmail account.",
     {"to": "Recipients", "cc": "Copy recipients", "subject": "Subject line", "body": "Message body",
      "attachments": "Files to attach"}),
    ("gmail_search_messages", "Search the Gmail mailbox with Gmail's search operators.",
     {"q": "Query such as from:alice has:attachment"}),
    ("notion_search", "Search Notion pages and databases by title.",
     {"query": "Words in the title", "filter": "page or database"}),
    ("notion_query_database", "Query the rows of a Notion database with filters and sorts.",
     {"database_id": "Database", "filter": "Notion filter object", "sorts": "Sort order"}),
    ("get_weather", "Get the current conditions and the forecast for a location.",
     {"location": "City and country, e.g. Paris, France", "unit": "celsius or fahrenheit"}),
    ("get_air_quality", "Get the air quality index and pollutant levels for a city.",
     {"city": "City name"}),
]  # fmt: skip


def _tool(name: str, description: str, arguments: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {arg: {"type": "string", "description": text} for arg, text in arguments.items()},
            "required": list(arguments)[:1],
        },
        "defer_loading": True,
    }


def catalog() -> list[dict[str, Any]]:
    """The deferred tools: generated ones first (service by service), then the handwritten ones."""
    tools: list[dict[str, Any]] = []
    for service, context, resources in SERVICES:
        for resource, label, arguments, actions in resources:
            for action in actions:
                template, generic = ACTIONS[action]
                merged = {arg: GENERIC_ARGUMENTS[arg].format(r=label) for arg in generic}
                if action in ("create", "update"):
                    merged.update(arguments)
                else:
                    merged.update(
                        {
                            arg: text
                            for arg, text in arguments.items()
                            if arg in ("owner", "repo", "project_key")
                        }
                    )
                noun = resource
                if action == "list":
                    noun = resource[:-1] + "ies" if resource.endswith("y") else resource + "s"
                tools.append(
                    _tool(
                        f"{service}_{action}_{noun}",
                        template.format(r=label, ctx=context),
                        merged,
                    )
                )
    tools.extend(_tool(name, description, arguments) for name, description, arguments in HANDWRITTEN)
    return tools
