"""`crawlgraph users add | list`: manage the API's users (admin)."""

from __future__ import annotations

import argparse
import getpass
import sys

from cli.client import client_for
from cli.format import table


def cmd_users_add(args: argparse.Namespace) -> int:
    password = args.password or (sys.stdin.readline().rstrip("\n") if args.password_stdin
                                 else getpass.getpass(f"password for {args.username}: "))
    client = client_for(args)
    try:
        user = client.call("POST", "/api/v1/users", json={
            "username": args.username, "password": password,
            "role": "admin" if args.admin else "user"})
    finally:
        client.close()
    print(f"user {user['username']} ({user['role']}) created, id {user['id']}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    client = client_for(args)
    try:
        users = client.call("GET", "/api/v1/users")["items"]
    finally:
        client.close()
    rows = [[str(u["id"]), u["username"], u["role"], "yes" if u["disabled"] else "no"]
            for u in users]
    print(table(rows, ["ID", "USERNAME", "ROLE", "DISABLED"]))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the API (default: the local stack's)")

    users = subparsers.add_parser("users", help="manage users (admin)")
    users_sub = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    add = users_sub.add_parser("add", parents=[common], help="create a user")
    add.add_argument("username")
    add.add_argument("--admin", action="store_true", help="with the admin role")
    add.add_argument("--password", help="the password (default: asked for)")
    add.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    add.set_defaults(func=cmd_users_add)
    listing = users_sub.add_parser("list", parents=[common], help="list users")
    listing.set_defaults(func=cmd_users_list)
