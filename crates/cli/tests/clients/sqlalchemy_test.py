"""SQLAlchemy 2 against Tessera (psycopg 3 driver): create_all, ORM writes and queries,
relationships, reflection through the inspector. Usage: python3 sqlalchemy_test.py URL"""
import datetime
import decimal
import sys

from sqlalchemy import (ForeignKey, Index, MetaData, Numeric, String, Table, create_engine, func, inspect,
                        select, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

url = sys.argv[1].replace("postgresql://", "postgresql+psycopg://")
engine = create_engine(url)


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "sa_authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    born: Mapped[datetime.date | None]
    books: Mapped[list["Book"]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = "sa_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), index=True)
    price: Mapped[decimal.Decimal] = mapped_column(Numeric(8, 2))
    author_id: Mapped[int] = mapped_column(ForeignKey("sa_authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)

with Session(engine) as s:
    ada = Author(name="Ada", born=datetime.date(1815, 12, 10))
    ada.books = [Book(title="Notes", price=decimal.Decimal("12.50")), Book(title="Sketch", price=decimal.Decimal("3"))]
    s.add_all([ada, Author(name="Alan")])
    s.commit()
    assert ada.id is not None

with Session(engine) as s:
    a = s.scalars(select(Author).where(Author.name == "Ada")).one()
    assert [b.title for b in a.books] == ["Notes", "Sketch"]
    total = s.scalar(select(func.sum(Book.price)).join(Author).where(Author.name == "Ada"))
    assert total == decimal.Decimal("15.50"), total
    counts = s.execute(
        select(Author.name, func.count(Book.id)).outerjoin(Book).group_by(Author.name).order_by(Author.name)
    ).all()
    assert [tuple(c) for c in counts] == [("Ada", 2), ("Alan", 0)], counts
    a.books[1].price = decimal.Decimal("4.25")
    s.delete(s.scalars(select(Author).where(Author.name == "Alan")).one())
    s.commit()
    assert s.scalar(select(Book.price).where(Book.title == "Sketch")) == decimal.Decimal("4.25")
    assert s.scalar(select(func.count()).select_from(Author)) == 1

# Reflection.
insp = inspect(engine)
assert {"sa_authors", "sa_books"} <= set(insp.get_table_names()), insp.get_table_names()
cols = {c["name"]: c for c in insp.get_columns("sa_books")}
assert set(cols) == {"id", "title", "price", "author_id"}, cols
assert str(cols["price"]["type"]) == "NUMERIC(8, 2)", cols["price"]["type"]
assert str(cols["title"]["type"]) == "VARCHAR(200)", cols["title"]["type"]
assert cols["title"]["nullable"] is False
assert insp.get_pk_constraint("sa_books")["constrained_columns"] == ["id"]
fks = insp.get_foreign_keys("sa_books")
assert fks and fks[0]["referred_table"] == "sa_authors" and fks[0]["constrained_columns"] == ["author_id"], fks
assert fks[0]["referred_columns"] == ["id"], fks
idx = {i["name"]: i for i in insp.get_indexes("sa_books")}
assert "ix_sa_books_title" in idx and idx["ix_sa_books_title"]["column_names"] == ["title"], idx
uniq = insp.get_unique_constraints("sa_authors")
assert any(u["column_names"] == ["name"] for u in uniq), uniq

meta = MetaData()
books = Table("sa_books", meta, autoload_with=engine)
with engine.connect() as c:
    assert c.execute(select(books.c.title).order_by(books.c.id)).scalars().all() == ["Notes", "Sketch"]
    assert c.execute(text("SELECT current_database()")).scalar() == "postgres"
print("sqlalchemy: ok")
