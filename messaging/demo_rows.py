"""The demo's fixed rows: the CRM tables' DDL and name pools, and the platform's templates
and workflows (``python -m messaging.demo`` writes them)."""

from __future__ import annotations

from typing import Any

CRM_DDL = [
    """CREATE TABLE IF NOT EXISTS customers (
        id INT PRIMARY KEY AUTO_INCREMENT,
        name VARCHAR(100) NOT NULL,
        phone VARCHAR(20),
        email VARCHAR(100),
        grade VARCHAR(20) NOT NULL DEFAULT '일반',
        marketing_opt_in TINYINT(1) NOT NULL DEFAULT 0,
        birth_date DATE,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
        KEY idx_customers_phone (phone),
        KEY idx_customers_updated_at (updated_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    """CREATE TABLE IF NOT EXISTS subscriptions (
        id INT PRIMARY KEY AUTO_INCREMENT,
        customer_id INT,
        plan_name VARCHAR(50) NOT NULL,
        status VARCHAR(50),
        start_date DATE,
        end_date DATE,
        monthly_fee INT NOT NULL DEFAULT 0,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (customer_id) REFERENCES customers(id),
        KEY idx_subscriptions_status (status),
        KEY idx_subscriptions_end_date (end_date)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    """CREATE TABLE IF NOT EXISTS payments (
        id INT PRIMARY KEY AUTO_INCREMENT,
        customer_id INT NOT NULL,
        subscription_id INT,
        amount INT NOT NULL,
        method VARCHAR(20) NOT NULL,
        status VARCHAR(20) NOT NULL,
        paid_at DATETIME NOT NULL,
        FOREIGN KEY (customer_id) REFERENCES customers(id),
        FOREIGN KEY (subscription_id) REFERENCES subscriptions(id),
        KEY idx_payments_paid_at (paid_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
]

PLANS = [
    ("건강기능식품 정기배송", 39_000),
    ("종합비타민 구독", 25_000),
    ("유산균 프리미엄", 32_000),
    ("오메가3 패밀리", 45_000),
    ("관절케어 플랜", 52_000),
]
SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = [
    "민준",
    "서연",
    "도윤",
    "지우",
    "하준",
    "서윤",
    "은우",
    "하은",
    "지호",
    "수아",
    "예준",
    "지아",
    "시우",
    "채원",
    "주원",
    "다은",
    "현우",
    "윤서",
    "건우",
    "소율",
]

TEMPLATES = {
    "welcome_sms": {
        "name": "구독 환영 SMS",
        "category": "welcome",
        "message_type": "sms",
        "content": "#{name}님, #{plan_name} 구독을 환영합니다!",
    },
    "renewal_lms": {
        "name": "구독 만료 안내 LMS",
        "category": "reminder",
        "message_type": "lms",
        "content": "안녕하세요 #{고객명}님.\n이용 중인 #{plan_name} 구독이 "
        "#{end_date_kr}에 만료됩니다 (#{days_left}일 남음).\n"
        "최근 결제금액: #{last_payment}원\n고객센터 1588-0000",
    },
    "promo_lms": {
        "name": "VIP 프로모션",
        "category": "promotion",
        "message_type": "lms",
        "content": "#{name}님께만 드리는 #{grade} 등급 혜택! "
        "이번 주 전 상품 15% 할인 (#{today} 기준)",
    },
    "event_kakao": {
        "name": "결제 완료 알림톡",
        "category": "notification",
        "message_type": "kakao",
        "template_code": "KA01TP221027002252645FPwAcO9SguY",
        "content": "[건강구독] #{name}님, #{plan_name} 구독 신청이 완료되었습니다.\n"
        "시작일: #{start_date}",
        "buttons": [
            {"buttonType": "WL", "buttonName": "구독 확인", "linkMo": "https://example.kr/my"}
        ],
    },
}


def demo_workflows(event_start_after: int) -> dict[str, dict[str, Any]]:
    """The four demo workflows (manual, schedule, event, webhook) by key; templates by key."""
    expiring_sql = (
        "SELECT c.id, c.name, c.phone, s.plan_name, s.end_date, s.customer_id FROM subscriptions s"
        " JOIN customers c ON c.id = s.customer_id WHERE s.status = 'active'"
        " AND s.end_date BETWEEN CURDATE() AND CURDATE() + INTERVAL 14 DAY ORDER BY s.id"
    )
    new_sub_sql = (
        "SELECT s.id, c.name, c.phone, s.plan_name, s.start_date FROM subscriptions s"
        " JOIN customers c ON c.id = s.customer_id WHERE s.id > %(event_from)s AND s.id <= "
        "%(event_to)s"
        " ORDER BY s.id"
    )
    workflows = {
        "manual": dict(
            name="VIP 프로모션 (수동)",
            trigger_type="manual",
            status="active",
            template="promo_lms",
            target={
                "table": "customers",
                "filters": [
                    {"field": "grade", "op": "=", "value": "VIP"},
                    {"field": "marketing_opt_in", "op": "=", "value": 1},
                ],
            },
            variables={},
            trigger={},
            schedule={},
        ),
        "schedule": dict(
            name="구독 만료 안내 (5분마다)",
            trigger_type="schedule",
            status="active",
            template="renewal_lms",
            target={"sql": expiring_sql, "phone_column": "phone", "name_column": "name"},
            variables={
                "end_date_kr": {
                    "type": "function",
                    "function": "format_date",
                    "argument": "end_date",
                },
                "days_left": {"type": "function", "function": "days_until", "argument": "end_date"},
                "last_payment": {
                    "type": "query",
                    "template": "last_payment",
                    "params": {"customer_id": "customer_id"},
                    "default": "0",
                },
            },
            trigger={},
            schedule={"cron": "*/5 * * * *", "timezone": "Asia/Seoul"},
        ),
        "event": dict(
            name="신규 구독 알림톡 (이벤트)",
            trigger_type="event",
            status="active",
            template="event_kakao",
            target={"sql": new_sub_sql, "phone_column": "phone", "name_column": "name"},
            variables={},
            trigger={
                "table": "subscriptions",
                "key_column": "id",
                "start_after": event_start_after,
            },
            schedule={},
        ),
        "webhook": dict(
            name="웹훅 환영 메시지",
            trigger_type="webhook",
            status="active",
            template="welcome_sms",
            target={
                "sql": "SELECT c.id, c.name, c.phone, s.plan_name FROM customers c JOIN "
                "subscriptions s"
                " ON s.customer_id = c.id WHERE c.id = %(customer_id)s ORDER BY s.id DESC LIMIT 1",
                "phone_column": "phone",
                "name_column": "name",
                "params_from_payload": ["customer_id"],
            },
            variables={},
            trigger={"payload_params": ["customer_id"]},
            schedule={},
        ),
    }
    return workflows
