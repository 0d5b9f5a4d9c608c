-- Users and logins (jobapi.users, jobapi.auth); user_columns is read by jobapi.users._user.

-- fragment: user_columns
id, username, role, disabled, created_at, updated_at

-- name: user_for_login
SELECT id, username, password_hash, disabled FROM users WHERE username = %s;

-- name: user_for_token
SELECT id, username, role, disabled FROM users WHERE id = %s;

-- name: insert_user
INSERT INTO users (username, password_hash, role) VALUES (%s, %s, %s)
ON CONFLICT (username) DO NOTHING
RETURNING {user_columns};

-- name: list_users
SELECT {user_columns} FROM users ORDER BY id;

-- name: user_by_id
SELECT {user_columns} FROM users WHERE id = %s;

-- name: update_user
UPDATE users
SET password_hash = coalesce(%(password_hash)s, password_hash),
    role = coalesce(%(role)s, role),
    disabled = coalesce(%(disabled)s, disabled),
    updated_at = now()
WHERE id = %(id)s
RETURNING {user_columns};
